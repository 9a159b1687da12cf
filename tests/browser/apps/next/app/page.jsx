// A server component (prerendered by `next build`) around a client component.
import Live from "./Live";

export default function Page() {
  return (
    <main>
      <h1>hublink</h1>
      <Live />
    </main>
  );
}
