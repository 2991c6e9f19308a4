//! The lib tests' allocator: the system's, counting the allocations each
//! thread makes, so that a test counts what one step allocates
//! ([`allocations`]) while other tests run on other threads.
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

struct Counting;

thread_local! {
    static MADE: Cell<u64> = const { Cell::new(0) };
}

fn count() {
    let _ = MADE.try_with(|n| n.set(n.get() + 1));
}

// SAFETY: every call is passed on to the system allocator unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        count();
        System.alloc(l)
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        count();
        System.alloc_zeroed(l)
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        System.dealloc(p, l)
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        count();
        System.realloc(p, l, n)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// What `f` returns, and the allocations and reallocations it made (on
/// this thread, where it runs).
pub fn allocations<T>(f: impl FnOnce() -> T) -> (T, u64) {
    let before = MADE.with(Cell::get);
    let made = f();
    (made, MADE.with(Cell::get) - before)
}
