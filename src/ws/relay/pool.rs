//! Read buffers lent to a pump only while it holds bytes in flight.
//!
//! A relay direction takes a buffer for a read that returns data, keeps it
//! while those bytes are written out, and gives it back once they are all
//! forwarded, so an idle connection holds none. Each worker thread keeps a
//! small stack of free buffers of each size: taking and giving are a `Vec`
//! pop and push, with no lock, no atomic and no allocation on the hot path.
//! A buffer may be taken on one thread and given back on another (tasks
//! migrate under a work-stealing runtime); the bound keeps any thread from
//! hoarding.
//!
//! Two sizes: a read starts with a [`Size::Small`] buffer; a read that
//! filled its buffer to the brim says the socket holds more, so the next
//! read of that direction takes a [`Size::Large`] one and moves four times
//! as much per `recv` and `send` (bulk transfers, deep pipelines). A read
//! that comes back short returns the direction to small buffers.

#[cfg(test)]
use std::cell::Cell;
use std::cell::RefCell;
use std::ops::{Deref, DerefMut};

use super::BUF_SIZE;

/// The large buffer: four small ones, the most a busy direction moves per
/// syscall (and what a destination that stopped reading can hold stuck).
pub const LARGE_BUF_SIZE: usize = 4 * BUF_SIZE;

/// Free small buffers kept per thread; beyond that, given-back buffers are
/// freed. A busy thread needs about one per direction it serves at a time.
const FREE_PER_THREAD: usize = 32;

/// Free large buffers kept per thread.
const FREE_LARGE_PER_THREAD: usize = 8;

/// Which buffer a read takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Size {
    /// [`BUF_SIZE`] bytes: every read starts here.
    Small,
    /// [`LARGE_BUF_SIZE`] bytes: after a read that filled its buffer.
    Large,
}

impl Size {
    /// The size for the read after one that got `n` bytes into `capacity`.
    pub(super) fn after_read(n: usize, capacity: usize) -> Size {
        match n == capacity {
            true => Size::Large,
            false => Size::Small,
        }
    }
}

/// Free buffers of one size.
type FreeList = Vec<Box<[u8]>>;

thread_local! {
    /// This thread's free buffers, small and large.
    static FREE: RefCell<(FreeList, FreeList)> = const { RefCell::new((Vec::new(), Vec::new())) };
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

/// A pooled read buffer, back in the pool when dropped.
pub(super) struct Buf(Box<[u8]>);

impl Buf {
    /// A buffer of `size` from this thread's free list, or a new one.
    pub(super) fn take(size: Size) -> Self {
        count(1);
        let reused = FREE
            .try_with(|free| {
                let mut free = free.borrow_mut();
                match size {
                    Size::Small => free.0.pop(),
                    Size::Large => free.1.pop(),
                }
            })
            .ok()
            .flatten();
        let len = match size {
            Size::Small => BUF_SIZE,
            Size::Large => LARGE_BUF_SIZE,
        };
        Self(reused.unwrap_or_else(|| vec![0; len].into_boxed_slice()))
    }
}

impl Drop for Buf {
    fn drop(&mut self) {
        let buf = std::mem::take(&mut self.0);
        count(-1);
        // During thread teardown the list is gone; the buffer is just freed.
        let _ = FREE.try_with(|free| {
            let mut free = free.borrow_mut();
            let (list, bound) = match buf.len() {
                BUF_SIZE => (&mut free.0, FREE_PER_THREAD),
                _ => (&mut free.1, FREE_LARGE_PER_THREAD),
            };
            if list.len() < bound {
                list.push(buf);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_read_asks_for_a_large_buffer_and_a_short_one_goes_back() {
        assert_eq!(Size::after_read(BUF_SIZE, BUF_SIZE), Size::Large);
        assert_eq!(Size::after_read(100, BUF_SIZE), Size::Small);
        assert_eq!(
            Size::after_read(LARGE_BUF_SIZE - 1, LARGE_BUF_SIZE),
            Size::Small
        );
        assert_eq!(Buf::take(Size::Small).len(), BUF_SIZE);
        assert_eq!(Buf::take(Size::Large).len(), LARGE_BUF_SIZE);
    }
}
