//! The file-backed outbox ([`ClientBuilder::outbox`](crate::ClientBuilder::outbox)):
//! the publishes still unanswered, kept in a file, so that a client built on
//! the same file after the tool restarted sends them again with the same ids.
//!
//! The file is a log of JSON lines, appended to: one line per publish handed
//! to the core,
//! `{"add":ID,"topic":T,"data":D,"published_at_ms":P,"expires_at_ms":E}`
//! (wall-clock Unix ms: the core has no clock, and its monotonic one does
//! not survive a restart), and one per publish settled, `{"done":ID}`.
//! Opening replays the log to the publishes still unsettled, in the order
//! they were added, then rewrites it with only those (a temp file renamed
//! over it, so that a crash mid-rewrite leaves the old log whole). A line
//! that does not parse, such as a last line torn by a crash mid-write, is
//! skipped with a warning. While running, the log is truncated whenever
//! nothing is left unsettled, and rewritten when settled lines pile up.
//!
//! Durability: each line is handed to the OS in one `write` as it happens,
//! so it survives the process being killed or crashing. Nothing is synced
//! to the disk (no fsync): a power cut or an OS crash may lose the latest
//! lines, which is not what a monitoring tool that restarts needs.
//!
//! One client at a time: an advisory lock (flock, `LockFileEx` on Windows)
//! on `<file>.lock`, which the OS releases when the process ends however it
//! ends, so a crash leaves no stale lock. The lock file is left in place
//! (removing it would race with the next opener). It lives beside the log
//! rather than on it because the compaction renames a new file over the
//! log, which a lock on the old one would not cover.

use crate::Error;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// Settled lines beyond which a running outbox is rewritten (when they are
/// also most of the log): it stays small without a rewrite per publish.
const REWRITE_AFTER_LINES: usize = 4_096;

/// A publish the outbox holds until it is settled.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct Entry {
    /// The publish id.
    #[serde(rename = "add")]
    pub(crate) id: String,
    pub(crate) topic: String,
    pub(crate) data: Value,
    /// When it was first published, Unix ms.
    pub(crate) published_at_ms: u64,
    /// When its time to live runs out, Unix ms.
    pub(crate) expires_at_ms: u64,
}

/// One line of the log.
#[derive(Deserialize)]
#[serde(untagged)]
enum Record {
    Add(Entry),
    Done { done: String },
}

#[derive(Serialize)]
struct Done<'a> {
    done: &'a str,
}

/// An open, locked outbox file and what it holds unsettled.
#[derive(Debug)]
pub(crate) struct Outbox {
    path: PathBuf,
    /// The log, opened for appending.
    log: File,
    /// Held locked for the outbox's life; the OS drops the lock with it.
    _lock: File,
    entries: Entries,
    /// Lines in the log now.
    lines: usize,
}

/// The unsettled entries in the order they were added (by a counter), and
/// where each id is.
#[derive(Debug, Default)]
struct Entries {
    ordered: BTreeMap<u64, Entry>,
    by_id: HashMap<String, u64>,
    next: u64,
}

impl Entries {
    fn insert(&mut self, entry: Entry) -> bool {
        if self.by_id.contains_key(&entry.id) {
            return false;
        }
        self.by_id.insert(entry.id.clone(), self.next);
        self.ordered.insert(self.next, entry);
        self.next += 1;
        true
    }

    fn remove(&mut self, id: &str) -> bool {
        match self.by_id.remove(id) {
            Some(key) => self.ordered.remove(&key).is_some(),
            None => false,
        }
    }

    fn len(&self) -> usize {
        self.ordered.len()
    }

    fn is_empty(&self) -> bool {
        self.ordered.is_empty()
    }

    /// Replays a log; lines that do not parse are skipped with a warning.
    fn replay(path: &Path, bytes: &[u8]) -> Entries {
        let mut entries = Entries::default();
        let lines: Vec<&[u8]> = bytes
            .split(|b| *b == b'\n')
            .map(<[u8]>::trim_ascii)
            .collect();
        let last = lines.iter().rposition(|line| !line.is_empty());
        for (n, line) in lines.iter().enumerate() {
            if line.is_empty() {
                continue;
            }
            match serde_json::from_slice::<Record>(line) {
                Ok(Record::Add(entry)) => {
                    entries.insert(entry);
                }
                Ok(Record::Done { done }) => {
                    entries.remove(&done);
                }
                Err(e) if Some(n) == last => tracing::warn!(
                    "hublink: outbox {}: line {} skipped, torn by a crash mid-write? ({e})",
                    path.display(),
                    n + 1
                ),
                Err(e) => tracing::warn!(
                    "hublink: outbox {}: line {} skipped, not an outbox record ({e})",
                    path.display(),
                    n + 1
                ),
            }
        }
        entries
    }
}

/// Now on the wall clock, in Unix ms.
pub(crate) fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn error(path: &Path, problem: impl Into<String>) -> Error {
    Error::Outbox {
        path: path.to_owned(),
        problem: problem.into(),
    }
}

/// `<path><suffix>`, beside the file.
fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

impl Outbox {
    /// Locks the outbox at `path` (created if missing), replays its log and
    /// rewrites it compacted. Fails, naming the path and the OS error, when
    /// it cannot be read, written or locked.
    pub(crate) fn open(path: &Path) -> Result<Outbox, Error> {
        let lock_path = sibling(path, ".lock");
        let lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(|e| {
                error(
                    path,
                    format!("cannot create its lock file {}: {e}", lock_path.display()),
                )
            })?;
        // Fully qualified: std's own `File::try_lock` (Rust 1.89) is newer
        // than the crate's minimum Rust version.
        match fs4::FileExt::try_lock(&lock) {
            Ok(()) => {}
            Err(fs4::TryLockError::WouldBlock) => {
                return Err(error(
                    path,
                    format!(
                        "in use by another client (its lock {} is held); \
                         one client at a time per outbox file",
                        lock_path.display()
                    ),
                ))
            }
            Err(fs4::TryLockError::Error(e)) => {
                return Err(error(
                    path,
                    format!("cannot lock {}: {e}", lock_path.display()),
                ))
            }
        }
        let bytes = match fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(error(path, format!("cannot read it: {e}"))),
        };
        let entries = Entries::replay(path, &bytes);
        let log = write_compacted(path, &entries)
            .map_err(|e| error(path, format!("cannot rewrite it compacted: {e}")))?;
        Ok(Outbox {
            path: path.to_owned(),
            log,
            _lock: lock,
            lines: entries.len(),
            entries,
        })
    }

    /// The unsettled publishes, in the order they were first published.
    pub(crate) fn unsettled(&self) -> Vec<Entry> {
        self.entries.ordered.values().cloned().collect()
    }

    /// Records a publish the core took (before its frame goes out).
    pub(crate) fn add(&mut self, entry: Entry) {
        let line = serde_json::to_vec(&entry).expect("JSON values serialise");
        let id = entry.id.clone();
        if !self.entries.insert(entry) {
            return;
        }
        if let Err(e) = self.append(line) {
            tracing::warn!(
                "hublink: outbox {}: cannot record publish {id}: {e}; \
                 it is sent all the same, but would not be after a restart",
                self.path.display()
            );
        }
    }

    /// Records that a publish was answered, refused or expired. Does nothing
    /// for an id it does not hold.
    pub(crate) fn settle(&mut self, id: &str) {
        if !self.entries.remove(id) {
            return;
        }
        let result = if self.entries.is_empty() {
            // Nothing left: an empty log, in one step a crash cannot tear.
            self.log.set_len(0).map(|()| self.lines = 0)
        } else if self.lines >= REWRITE_AFTER_LINES && self.lines > 4 * self.entries.len() {
            self.rewrite()
        } else {
            let line = serde_json::to_vec(&Done { done: id }).expect("a string serialises");
            self.append(line)
        };
        if let Err(e) = result {
            tracing::warn!(
                "hublink: outbox {}: cannot record the outcome of publish {id}: {e}; \
                 a restart would send it again (the server answers a repeat within \
                 its dedupe window without publishing it twice)",
                self.path.display()
            );
        }
    }

    /// One line, in one write: the file is opened for appending, so a crash
    /// leaves at worst that line torn, which the next open skips. A `File`
    /// has no buffer of its own: once `write_all` returns the line is the
    /// OS's, and a process crash no longer loses it. The caller is the
    /// driver task: a blocking write of one short line per publish, for a
    /// feature asked for, is cheaper than a thread hop.
    fn append(&mut self, mut line: Vec<u8>) -> io::Result<()> {
        line.push(b'\n');
        self.log.write_all(&line)?;
        self.log.flush()?;
        self.lines += 1;
        Ok(())
    }

    fn rewrite(&mut self) -> io::Result<()> {
        self.log = write_compacted(&self.path, &self.entries)?;
        self.lines = self.entries.len();
        Ok(())
    }
}

/// Replaces the log at `path` with `entries`, written to `<file>.tmp` and
/// renamed over it, so that the log is whole at every moment, the old one or
/// the new one; returns the new log opened for appending.
fn write_compacted(path: &Path, entries: &Entries) -> io::Result<File> {
    let tmp = sibling(path, ".tmp");
    let mut text = Vec::new();
    for entry in entries.ordered.values() {
        serde_json::to_writer(&mut text, entry).expect("JSON values serialise");
        text.push(b'\n');
    }
    let mut file = File::create(&tmp)?;
    file.write_all(&text)?;
    file.flush()?;
    drop(file);
    fs::rename(&tmp, path)?;
    OpenOptions::new().append(true).open(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A fresh path in the system's temp directory, for one test.
    fn path(test: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("hublink-outbox-{}-{test}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir.join("outbox.jsonl")
    }

    fn entry(id: &str) -> Entry {
        Entry {
            id: id.to_owned(),
            topic: "orders".to_owned(),
            data: json!({"id": id}),
            published_at_ms: 1,
            expires_at_ms: 2,
        }
    }

    fn ids(outbox: &Outbox) -> Vec<String> {
        outbox.unsettled().into_iter().map(|e| e.id).collect()
    }

    #[test]
    fn the_log_replays_in_order_and_empties_once_all_is_settled() {
        let path = path("replay");
        let mut outbox = Outbox::open(&path).unwrap();
        for id in ["a", "b", "c"] {
            outbox.add(entry(id));
        }
        outbox.add(entry("a")); // one record per id
        outbox.settle("b");
        outbox.settle("zz"); // not ours: nothing written
        assert_eq!(fs::read_to_string(&path).unwrap().lines().count(), 4);
        drop(outbox);
        let mut outbox = Outbox::open(&path).unwrap();
        assert_eq!(ids(&outbox), ["a", "c"]);
        assert_eq!(outbox.unsettled()[0], entry("a"), "every field kept");
        assert_eq!(
            fs::read_to_string(&path).unwrap().lines().count(),
            2,
            "compacted on opening"
        );
        outbox.settle("a");
        outbox.settle("c");
        assert_eq!(fs::read_to_string(&path).unwrap(), "");
        outbox.add(entry("d"));
        drop(outbox);
        assert_eq!(ids(&Outbox::open(&path).unwrap()), ["d"]);
        let _ = fs::remove_dir_all(path.parent().unwrap());
    }

    #[test]
    fn a_bad_line_anywhere_is_skipped_and_the_rest_kept() {
        let path = path("bad");
        let add = |id: &str| serde_json::to_string(&entry(id)).unwrap();
        let log = format!(
            "{}\nnot json\n\n{}\n{{\"done\":\"a\"}}\n{{\"add\":",
            add("a"),
            add("b")
        );
        fs::write(&path, log).unwrap();
        assert_eq!(ids(&Outbox::open(&path).unwrap()), ["b"]);
        let _ = fs::remove_dir_all(path.parent().unwrap());
    }

    #[test]
    fn settled_lines_are_rewritten_away_once_they_pile_up() {
        let path = path("pile");
        let mut outbox = Outbox::open(&path).unwrap();
        outbox.add(entry("kept"));
        for n in 0..REWRITE_AFTER_LINES {
            let id = n.to_string();
            outbox.add(entry(&id));
            outbox.settle(&id);
        }
        let lines = fs::read_to_string(&path).unwrap().lines().count();
        assert!(lines < REWRITE_AFTER_LINES, "{lines} lines");
        drop(outbox);
        assert_eq!(ids(&Outbox::open(&path).unwrap()), ["kept"]);
        assert!(
            !sibling(&path, ".tmp").exists(),
            "the temp file was renamed"
        );
    }
}
