//! Thread-per-core: the worker runtimes that accept and serve connections.
//!
//! Each worker is one thread running tokio's single-threaded scheduler.
//! Every listener runs one accept loop per worker, all on the same socket
//! (one accept queue: whichever worker is free takes the next connection,
//! like nginx workers sharing a listening socket). A connection is served
//! where it was accepted: its TLS and HTTP, the backend dial, the relay of
//! both legs and every timer stay on that thread, so no wake-up crosses
//! threads and nothing moves between cores. State shared across workers
//! (the drain's trackers, limits, metrics) is touched per connection, not
//! per relayed message: a relay counts into its own counters, merged at
//! scrape.
//!
//! Worker 0 is the runtime `run_with` runs on (the main thread in the
//! binary), which also hosts the admin endpoints, reloads and the drain;
//! the others are threads started by [`WorkerThreads::start`].

use std::future::Future;
use std::io;
use std::thread::JoinHandle as ThreadHandle;

use tokio::runtime::Handle;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Where connections are served: handles to the worker runtimes.
#[derive(Debug, Clone)]
pub struct Workers {
    /// Workers 1.. (worker 0 is whichever runtime spawns, i.e. the one
    /// `run_with` runs on).
    extra: Vec<Handle>,
}

impl Workers {
    /// Only the runtime `run_with` is called on (tests, embedders, and a
    /// multi-threaded runtime whose own scheduler spreads the work).
    pub fn current() -> Self {
        Workers { extra: Vec::new() }
    }

    /// How many workers serve connections.
    pub fn count(&self) -> usize {
        1 + self.extra.len()
    }

    /// Runs `task` on worker `i` (0: the current runtime).
    pub(crate) fn spawn<F>(&self, i: usize, task: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        match i.checked_sub(1).and_then(|k| self.extra.get(k)) {
            Some(handle) => handle.spawn(task),
            None => tokio::spawn(task),
        }
    }
}

impl Default for Workers {
    fn default() -> Self {
        Workers::current()
    }
}

/// The threads of workers 1.. (worker 0 is the caller's thread).
#[derive(Debug)]
pub struct WorkerThreads {
    /// Each thread's stop signal and handle.
    threads: Vec<(oneshot::Sender<()>, ThreadHandle<()>)>,
    /// Their runtimes, for [`Workers`].
    handles: Vec<Handle>,
}

impl WorkerThreads {
    /// Starts `count - 1` worker threads, each with its own single-threaded
    /// runtime, so that with the caller's runtime there are `count` workers.
    pub fn start(count: usize) -> io::Result<Self> {
        let mut workers = WorkerThreads {
            threads: Vec::new(),
            handles: Vec::new(),
        };
        for i in 1..count {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let (stop, stopped) = oneshot::channel::<()>();
            workers.handles.push(runtime.handle().clone());
            let thread = std::thread::Builder::new()
                .name(format!("wsgate-worker-{i}"))
                .spawn(move || {
                    // Drives this worker's tasks until told to stop; what is
                    // left then (the drain has ended or cut it) is dropped.
                    let _ = runtime.block_on(stopped);
                })?;
            workers.threads.push((stop, thread));
        }
        Ok(workers)
    }

    /// The workers: the caller's runtime, then these threads.
    pub fn workers(&self) -> Workers {
        Workers {
            extra: self.handles.clone(),
        }
    }

    /// Stops every worker thread and waits for it to exit.
    pub fn stop(self) {
        for (stop, thread) in self.threads {
            let _ = stop.send(());
            let _ = thread.join();
        }
    }
}

/// Resolves `server.workers`: 0 means one per CPU.
pub fn resolve(configured: usize) -> usize {
    match configured {
        0 => std::thread::available_parallelism().map_or(1, usize::from),
        n => n,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_worker_runs_its_tasks_on_its_own_thread() {
        let threads = WorkerThreads::start(3).unwrap();
        let workers = threads.workers();
        assert_eq!(workers.count(), 3);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let names = runtime.block_on(async {
            let mut names = Vec::new();
            for i in 0..3 {
                let name = workers.spawn(i, async {
                    std::thread::current().name().map(str::to_owned)
                });
                names.push(name.await.unwrap());
            }
            names
        });
        let main = std::thread::current().name().map(str::to_owned);
        assert_eq!(names[0], main);
        assert_eq!(names[1].as_deref(), Some("wsgate-worker-1"));
        assert_eq!(names[2].as_deref(), Some("wsgate-worker-2"));
        threads.stop();
    }

    #[test]
    fn zero_means_one_per_cpu() {
        assert!(resolve(0) >= 1);
        assert_eq!(resolve(5), 5);
    }
}
