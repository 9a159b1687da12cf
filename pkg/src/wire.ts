/**
 * The numbers of the inputs and outputs that cross between the TS shell and
 * the wasm core (hublink-wasm `input` and `events::output`): const enums,
 * inlined where used, so that this module has no code of its own.
 *
 * @module
 */
/** The inputs of `Core.input`, in the order of their numbers (hublink-wasm `input`). */
export const enum Input {
  Value, Unparsed, Fits, Binary, Opened, Closed, Failed, Tick, Connect, Close,
  ReconnectNow, NetworkOffline, Subscribe, Unsubscribe, Publish, Send, SendText, RequestTopics,
  Suspend, Republish,
}

/** The outputs of `Outputs.out`, in the order of their numbers (hublink-wasm `events::output`). */
export const enum Output {
  Open, Send, Close, Refused, State, Welcome, Message, Subscribed, SubscribeFailed, Unsubscribed,
  Gap, Topics, ServerError, DecodeError, Unsent, Unknown, Published, PublishFailed,
}

/** What a refused `Core.input` returns (hublink-wasm `refused`); `ERROR_CODES` in client.ts names them. */
export const enum Refused {
  None, QueueFull, Unsupported, InvalidTopic, Closed,
}
