//! Regular files written on worker threads while the reader goes on with the tar.
//!
//! Most of the time of a layer of many small files is spent in the kernel, creating
//! them (open, write, owner, times, close). The reader thread still decompresses,
//! hashes, parses and decides everything in member order; it hands a small file over
//! as a job only when nothing that follows can depend on the file being there yet:
//!
//! - the job holds the file's data, its parent directory as an open fd (resolved by
//!   the reader inside the root, as for any member), and the metadata to apply: a
//!   worker only makes a new entry in that directory and never looks up a path;
//! - the reader hands over only names that no earlier member of the layer used, in a
//!   destination that was empty (so the create cannot meet anything in its way);
//! - before a member that could touch a pending file (a name used before, a hard link,
//!   a whiteout) and before the directories' modes and times are set at the end, the
//!   reader waits until every job is done ([`Pool::wait`]).
//!
//! All files of one directory go to the same worker: the kernel makes entries in one
//! directory one at a time anyway (under the directory's lock), and two threads
//! contending for it only burn CPU spinning. Files of different directories are
//! written in parallel; jobs travel in batches, one wake-up per batch.
//!
//! The first failure (in member order) is what the reader reports; after it workers
//! drop their jobs, and the reader waits for them before it cleans up.

use std::ffi::{CString, OsStr};
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use crate::error::{Error, Result};

use super::sys;

/// Files up to this size are handed to workers (bigger ones stream from the reader).
pub(crate) const MAX_JOB_FILE: u64 = 1 << 20;
/// A batch is sent when it holds this many files or bytes of data.
const BATCH_FILES: usize = 64;
const BATCH_BYTES: usize = 1 << 20;
/// Batches and bytes of file data in flight at most.
const MAX_BATCHES: usize = 64;
const MAX_BYTES: usize = 32 << 20;

/// One regular file to create.
pub(crate) struct FileJob {
    /// The member's position in the layer (the earliest failure is reported).
    pub seq: u64,
    pub dir: Arc<OwnedFd>,
    pub name: CString,
    /// The member's cleaned path, for errors.
    pub path: Vec<u8>,
    pub data: Vec<u8>,
    /// Mode given to the create, and the mode to set after it when they differ.
    pub create_mode: u32,
    pub chmod: Option<u32>,
    pub owner: Option<(u32, u32)>,
    pub xattrs: Vec<(CString, Vec<u8>)>,
    pub times: [libc::timespec; 2],
}

/// Flags of every regular-file create: a new entry, never through a symlink.
pub(crate) const CREATE_FLAGS: libc::c_int =
    libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW;

impl FileJob {
    fn run(&self, dest: &Path) -> Result<()> {
        let shown = || dest.join(OsStr::from_bytes(&self.path));
        let io_err = |e| Error::io(shown(), e);
        let fd = sys::openat(
            self.dir.as_raw_fd(),
            &self.name,
            CREATE_FLAGS,
            self.create_mode,
        )
        .map_err(io_err)?;
        let mut file = File::from(fd);
        file.write_all(&self.data).map_err(io_err)?;
        let fd = file.as_raw_fd();
        if let Some((uid, gid)) = self.owner {
            sys::fchown(fd, uid, gid).map_err(io_err)?;
        }
        for (name, value) in &self.xattrs {
            sys::fsetxattr(fd, name, value).map_err(|e| {
                let what = format!(
                    "{} (setting xattr {})",
                    String::from_utf8_lossy(&self.path),
                    name.to_string_lossy()
                );
                Error::io(dest.join(what), e)
            })?;
        }
        if let Some(mode) = self.chmod {
            sys::fchmod(fd, mode).map_err(io_err)?;
        }
        sys::futimens(fd, &self.times).map_err(io_err)
    }
}

#[derive(Default)]
struct State {
    /// Batches queued or being written, and their bytes of data.
    pending: usize,
    bytes: usize,
    /// The reader sleeps until a batch ends (workers wake it only then).
    reader_waiting: bool,
    failed: bool,
    /// The failure of the earliest member, until the reader takes it.
    error: Option<(u64, Error)>,
}

struct Shared {
    state: Mutex<State>,
    /// Signalled when a batch ends while the reader waits.
    done: Condvar,
    dest: PathBuf,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Files go to the workers in batches: one wake-up per batch, not per file.
struct Batch {
    jobs: Vec<FileJob>,
    bytes: usize,
}

/// One worker thread and the batch being gathered for it.
struct Worker {
    tx: Option<mpsc::Sender<Batch>>,
    thread: Option<JoinHandle<()>>,
    batch: Vec<FileJob>,
    batch_bytes: usize,
}

/// Worker threads writing [`FileJob`]s.
pub(crate) struct Pool {
    workers: Vec<Worker>,
    shared: Arc<Shared>,
}

impl Pool {
    /// Starts `workers` threads (at least one) writing into `dest` (named in errors).
    pub(crate) fn new(workers: usize, dest: &Path) -> Result<Pool> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            done: Condvar::new(),
            dest: dest.to_path_buf(),
        });
        let mut pool = Pool {
            workers: Vec::new(),
            shared,
        };
        for i in 0..workers.max(1) {
            let (tx, rx) = mpsc::channel::<Batch>();
            let shared = Arc::clone(&pool.shared);
            let spawned = std::thread::Builder::new()
                .name(format!("skiff-unpack-{i}"))
                .spawn(move || work(&rx, &shared));
            match spawned {
                Ok(handle) => pool.workers.push(Worker {
                    tx: Some(tx),
                    thread: Some(handle),
                    batch: Vec::with_capacity(BATCH_FILES),
                    batch_bytes: 0,
                }),
                // Fewer workers still work; none at all is an error.
                Err(e) if pool.workers.is_empty() => return Err(Error::io(dest, e)),
                Err(_) => break,
            }
        }
        Ok(pool)
    }

    /// Queues a job for the worker of directory `dir_key`; fails with the error of an
    /// earlier job if one failed.
    pub(crate) fn submit(&mut self, job: FileJob, dir_key: u64) -> Result<()> {
        let i = (dir_key % self.workers.len() as u64) as usize;
        let w = &mut self.workers[i];
        w.batch_bytes += job.data.len();
        w.batch.push(job);
        if w.batch.len() >= BATCH_FILES || w.batch_bytes >= BATCH_BYTES {
            self.flush(i)?;
        }
        Ok(())
    }

    /// Sends worker `i` the jobs gathered for it, waiting while too much is in flight.
    fn flush(&mut self, i: usize) -> Result<()> {
        if self.workers[i].batch.is_empty() {
            return Ok(());
        }
        let bytes = self.workers[i].batch_bytes;
        let mut st = self.shared.lock();
        while !st.failed
            && st.pending > 0
            && (st.pending >= MAX_BATCHES || st.bytes + bytes > MAX_BYTES)
        {
            st = self.sleep(st);
        }
        if st.failed {
            // Report the earliest failure: let the jobs before it end first.
            drop(st);
            for w in &mut self.workers {
                w.batch.clear();
                w.batch_bytes = 0;
            }
            return Err(self.wait().err().unwrap_or_else(|| self.generic()));
        }
        st.pending += 1;
        st.bytes += bytes;
        drop(st);
        let w = &mut self.workers[i];
        let batch = Batch {
            jobs: std::mem::replace(&mut w.batch, Vec::with_capacity(BATCH_FILES)),
            bytes,
        };
        w.batch_bytes = 0;
        let sent = match &w.tx {
            Some(tx) => tx.send(batch).is_ok(),
            None => false,
        };
        if !sent {
            let mut st = self.shared.lock();
            st.pending -= 1;
            st.bytes -= bytes;
            return Err(self.generic());
        }
        Ok(())
    }

    fn sleep<'g>(&self, mut st: MutexGuard<'g, State>) -> MutexGuard<'g, State> {
        st.reader_waiting = true;
        let mut st = self.shared.done.wait(st).unwrap_or_else(|e| e.into_inner());
        st.reader_waiting = false;
        st
    }

    fn generic(&self) -> Error {
        Error::io(
            &self.shared.dest,
            std::io::Error::other("an unpack worker failed"),
        )
    }

    /// Waits until every job so far is done; the first failure, if any.
    pub(crate) fn wait(&mut self) -> Result<()> {
        // On failure flush has waited for the others already.
        for i in 0..self.workers.len() {
            self.flush(i)?;
        }
        let mut st = self.shared.lock();
        while st.pending > 0 {
            st = self.sleep(st);
        }
        if st.failed {
            return Err(match st.error.take() {
                Some((_, e)) => e,
                None => self.generic(),
            });
        }
        Ok(())
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        // Closing a channel ends its worker once its queue is empty.
        for w in &mut self.workers {
            w.batch.clear();
            w.tx = None;
        }
        for w in &mut self.workers {
            if let Some(handle) = w.thread.take() {
                let _ = handle.join();
            }
        }
    }
}

fn work(rx: &mpsc::Receiver<Batch>, shared: &Shared) {
    loop {
        let batch = match rx.recv() {
            Ok(batch) => batch,
            Err(_) => return,
        };
        let mut failure = None;
        if !shared.lock().failed {
            for job in &batch.jobs {
                let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    job.run(&shared.dest)
                }))
                .unwrap_or_else(|_| {
                    Err(Error::io(
                        &shared.dest,
                        std::io::Error::other("an unpack worker panicked"),
                    ))
                });
                if let Err(e) = result {
                    failure = Some((job.seq, e));
                    break;
                }
            }
        }
        let bytes = batch.bytes;
        // The fds and the data go before the reader can see the batch as done.
        drop(batch);
        let mut st = shared.lock();
        st.pending -= 1;
        st.bytes -= bytes;
        if let Some((seq, e)) = failure {
            st.failed = true;
            if st.error.as_ref().is_none_or(|(s, _)| seq < *s) {
                st.error = Some((seq, e));
            }
        }
        let wake = st.reader_waiting;
        drop(st);
        if wake {
            shared.done.notify_all();
        }
    }
}
