//! Read buffers lent to a pump only while it holds bytes in flight.
//!
//! A relay direction takes a buffer for a read that returns data, keeps it
//! while those bytes are written out, and gives it back once they are all
//! forwarded, so an idle connection holds none. Each worker thread keeps a
//! small stack of free buffers: taking and giving are a `Vec` pop and push,
//! with no lock, no atomic and no allocation on the hot path. A buffer may be
//! taken on one thread and given back on another (tasks migrate); the bound
//! keeps any thread from hoarding.

#[cfg(test)]
use std::cell::Cell;
use std::cell::RefCell;
use std::ops::{Deref, DerefMut};

use super::BUF_SIZE;

/// Free buffers kept per thread; beyond that, given-back buffers are freed.
/// A busy thread needs about one per direction it is serving at a time.
const FREE_PER_THREAD: usize = 32;

thread_local! {
    /// This thread's free buffers.
    static FREE: RefCell<Vec<Box<[u8]>>> = const { RefCell::new(Vec::new()) };
}

#[cfg(test)]
thread_local! {
    /// Buffers taken minus buffers given back on this thread: with a
    /// single-threaded runtime, the number lent out.
    static LENT: Cell<isize> = const { Cell::new(0) };
}

/// Counts a buffer lent (+1) or given back (-1), in tests only.
fn count(_delta: isize) {
    #[cfg(test)]
    LENT.with(|lent| lent.set(lent.get() + _delta));
}

/// A read buffer of [`BUF_SIZE`] bytes, back in the pool when dropped.
pub(super) struct Buf(Box<[u8]>);

impl Buf {
    /// A buffer from this thread's free list, or a new one.
    pub(super) fn take() -> Self {
        count(1);
        let reused = FREE.try_with(|free| free.borrow_mut().pop()).ok().flatten();
        Self(reused.unwrap_or_else(|| vec![0; BUF_SIZE].into_boxed_slice()))
    }
}

impl Drop for Buf {
    fn drop(&mut self) {
        let buf = std::mem::take(&mut self.0);
        count(-1);
        // During thread teardown the list is gone; the buffer is just freed.
        let _ = FREE.try_with(|free| {
            let mut free = free.borrow_mut();
            if free.len() < FREE_PER_THREAD {
                free.push(buf);
            }
        });
    }
}

impl Deref for Buf {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl DerefMut for Buf {
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut self.0
    }
}

/// Buffers taken and not yet given back on this thread.
#[cfg(test)]
pub(super) fn lent() -> isize {
    LENT.with(Cell::get)
}
