//! Keeping the resident set to what the monitor uses while it waits.
//!
//! Most of a small process's RSS is code: pages of the binary (and of libc, ld.so
//! when linked dynamically) that were ever touched, each fault mapping its whole
//! 64 KiB neighbourhood ("fault-around"). A monitor spends its life blocked in
//! poll, needing little of it. So at the first quiet moment after start-up (and
//! after a client came or went), and whenever nothing happened for [`IDLE_MS`], the
//! monitor drops its read-only code and data mappings with `MADV_DONTNEED` and
//! blocks in `ppoll`, both issued as raw system calls so that no other code runs
//! in between. (A monitor that is never idle does so at the first gap in the
//! output after [`BUSY_SHRINK_MS`], keeping only its working set.) The hot path
//! makes its system calls directly too (sys.rs), leaving libc's code alone. Those
//! pages are clean copies of files in the page cache: what runs on the next
//! wake-up faults back in (a minor fault, no I/O). Writable segments (data,
//! relocated RELRO, heap) are never touched; of the stack, only what lies below
//! the current frame (dead by definition) is dropped.
//!
//! Start-up with the runtime built in (runtime.rs) runs skiff-runtime's `create` in
//! this process: thousands of short-lived allocations, and a deep stack. The stack
//! is covered above; the allocations go to a scratch arena ([`Alloc`],
//! [`scratch`]) given back whole afterwards, so they leave no fragmented heap
//! behind.
//!
//! (A debugger's breakpoints or uprobes in the monitor's code would be dropped
//! with the pages: this is for production, not for tracing the monitor.)

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};

use crate::sys;

/// How long the monitor must have been idle before it lets its code go.
pub const IDLE_MS: i32 = 2000;
/// How often a monitor that is never idle (a chatty container) still does.
pub const BUSY_SHRINK_MS: i64 = 60_000;

const MAX_RANGES: usize = 32;
/// (start, length) of the read-only segments, found once at start.
static RANGES: [(AtomicUsize, AtomicUsize); MAX_RANGES] =
    [const { (AtomicUsize::new(0), AtomicUsize::new(0)) }; MAX_RANGES];
static COUNT: AtomicUsize = AtomicUsize::new(0);
/// The page size, found at start.
static PAGE: AtomicUsize = AtomicUsize::new(4096);
/// The lowest address of the main stack's mapping after start-up (0: unknown).
static STACK_LOW: AtomicUsize = AtomicUsize::new(0);

/// Records the read-only `PT_LOAD` segments of every loaded object (the binary,
/// and libc, ld.so… when dynamic), shrunk to whole pages.
pub fn init() {
    // SAFETY: plain call.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as usize;
    PAGE.store(page, Relaxed);
    // SAFETY: dl_iterate_phdr calls `each` with valid info for each object.
    unsafe { libc::dl_iterate_phdr(Some(each), std::ptr::null_mut()) };
}

/// Records where the main stack's mapping begins now that start-up is over (the
/// mapping grew down as deep as start-up went, and never shrinks back), for
/// [`shrink`].
pub fn note_stack() {
    let Ok(maps) = std::fs::read_to_string("/proc/self/maps") else {
        return;
    };
    let low = maps
        .lines()
        .filter(|l| l.ends_with("[stack]"))
        .find_map(|l| usize::from_str_radix(l.split('-').next()?, 16).ok());
    STACK_LOW.store(low.unwrap_or(0), Relaxed);
}

unsafe extern "C" fn each(
    info: *mut libc::dl_phdr_info,
    _size: libc::size_t,
    _data: *mut libc::c_void,
) -> libc::c_int {
    // SAFETY: see init.
    let info = unsafe { &*info };
    if !info.dlpi_name.is_null() {
        // SAFETY: a non-null dlpi_name is a C string.
        let name = unsafe { std::ffi::CStr::from_ptr(info.dlpi_name) }.to_bytes();
        if name.starts_with(b"linux-vdso") || name.starts_with(b"linux-gate") {
            return 0;
        }
    }
    // SAFETY: plain call.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as u64;
    for i in 0..usize::from(info.dlpi_phnum) {
        // SAFETY: dlpi_phdr has dlpi_phnum entries.
        let ph = unsafe { &*info.dlpi_phdr.add(i) };
        if ph.p_type != libc::PT_LOAD || ph.p_flags & libc::PF_W != 0 {
            continue;
        }
        let start = (info.dlpi_addr + ph.p_vaddr).div_ceil(page) * page;
        let end = (info.dlpi_addr + ph.p_vaddr + ph.p_memsz) / page * page;
        let n = COUNT.load(Relaxed);
        if end > start && n < MAX_RANGES {
            RANGES[n].0.store(start as usize, Relaxed);
            RANGES[n].1.store((end - start) as usize, Relaxed);
            COUNT.store(n + 1, Relaxed);
        }
    }
    0
}

/// Gives back what the monitor does not use: free heap, the scratch arena, the
/// stack below this frame, and every page of code and read-only data (what runs
/// next faults back in).
#[inline(never)]
pub fn shrink() {
    // SAFETY: plain call; it only returns free heap memory to the kernel.
    unsafe { libc::malloc_trim(0) };
    release_arena();
    let page = PAGE.load(Relaxed);
    let here = 0u8;
    let sp = std::hint::black_box(&here) as *const u8 as usize;
    // Everything below this frame is dead; a page of margin under it (for the
    // system calls below) stays.
    let below = (sp & !(page - 1)).saturating_sub(page);
    let low = STACK_LOW.load(Relaxed);
    if low != 0 && below > low {
        // SAFETY: pages of our own stack mapping below the current frame: nothing
        // there is live (no signal handlers run on this stack: signals come
        // through a signalfd); they come back zeroed if the stack grows again.
        unsafe {
            sys::raw(
                libc::SYS_madvise,
                [low, below - low, libc::MADV_DONTNEED as usize, 0],
            )
        };
    }
    for (start, len) in RANGES.iter().take(COUNT.load(Relaxed)) {
        // SAFETY: a read-only private file mapping of this process, recorded at
        // start: MADV_DONTNEED only drops clean pages, which fault back in.
        unsafe {
            sys::raw(
                libc::SYS_madvise,
                [
                    start.load(Relaxed),
                    len.load(Relaxed),
                    libc::MADV_DONTNEED as usize,
                    0,
                ],
            )
        };
    }
}

/// [`shrink`], then blocks in ppoll (no timeout) until one of `fds` is ready,
/// with no other code in between. Returns the number of ready fds (0 on EINTR).
#[inline(never)]
pub fn shrink_and_poll(fds: &mut [libc::pollfd]) -> usize {
    shrink();
    // SAFETY: `fds` is valid for the call; null timeout and signal mask.
    let r = unsafe {
        sys::raw(
            libc::SYS_ppoll,
            [fds.as_mut_ptr() as usize, fds.len(), 0, 0],
        )
    };
    r.max(0) as usize
}

// ---------------------------------------------------------------------------
// The scratch arena

/// The monitor's allocator: the system's (glibc's malloc), except inside
/// [`scratch`], where new blocks come from an arena of their own: a region mapped
/// for the purpose, handed out from its start up (a freed block is not reused)
/// and unmapped whole as soon as nothing in it is live.
///
/// For skiff-runtime's verbs run in this process (runtime.rs): `create` makes
/// thousands of short-lived allocations (the parsed config, the mount and seccomp
/// plans...). Through malloc they would leave the heap fragmented for the life of
/// the container: glibc keeps freed small blocks in its per-thread cache, which
/// malloc_trim never empties, and every page holding one of them (or anything
/// allocated in between that lives on) stays resident; some 50 KiB measured.
pub struct Alloc;

/// The arena's size (MAP_NORESERVE: only the pages used count). Creating a
/// container uses some 100 KiB of it; past it, allocations fall back to malloc.
const ARENA_SIZE: usize = 16 << 20;
/// The arena's base address (0: not mapped).
static ARENA: AtomicUsize = AtomicUsize::new(0);
/// The offset of its first free byte.
static NEXT: AtomicUsize = AtomicUsize::new(0);
/// Its blocks allocated and not yet freed.
static LIVE: AtomicUsize = AtomicUsize::new(0);
/// Inside [`scratch`]: new blocks come from the arena.
static ACTIVE: AtomicBool = AtomicBool::new(false);

/// Runs `f` with every new allocation in the scratch arena; the arena is given
/// back when `f` returns, or later once what `f` returned (an error message, say)
/// is freed too.
pub fn scratch<T>(f: impl FnOnce() -> T) -> T {
    struct Active;
    impl Drop for Active {
        fn drop(&mut self) {
            ACTIVE.store(false, Relaxed);
            release_arena();
        }
    }
    if ARENA.load(Relaxed) == 0 {
        // SAFETY: a new private anonymous mapping, ours alone.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                ARENA_SIZE,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if p != libc::MAP_FAILED {
            ARENA.store(p as usize, Relaxed);
        }
    }
    ACTIVE.store(true, Relaxed);
    let _active = Active;
    f()
}

/// Unmaps the arena if nothing in it is live.
fn release_arena() {
    let base = ARENA.load(Relaxed);
    if base == 0 || ACTIVE.load(Relaxed) || LIVE.load(Relaxed) != 0 {
        return;
    }
    ARENA.store(0, Relaxed);
    NEXT.store(0, Relaxed);
    // SAFETY: the arena, in which no block is live (and none is made: not active).
    unsafe { sys::raw(libc::SYS_munmap, [base, ARENA_SIZE, 0, 0]) };
}

fn in_arena(p: *mut u8) -> bool {
    let base = ARENA.load(Relaxed);
    base != 0 && (p as usize).wrapping_sub(base) < ARENA_SIZE
}

/// A new block from the arena, or null when it is full (or not mapped). Aligned
/// as malloc's are at least (16 bytes), for code that counts on it (a byte buffer
/// read as a struct).
fn arena_alloc(layout: Layout) -> *mut u8 {
    let base = ARENA.load(Relaxed);
    if base == 0 {
        return std::ptr::null_mut();
    }
    let align = layout.align().max(16);
    let mut next = NEXT.load(Relaxed);
    loop {
        let start = (base + next).next_multiple_of(align) - base;
        let end = match start.checked_add(layout.size()) {
            Some(end) if end <= ARENA_SIZE => end,
            _ => return std::ptr::null_mut(),
        };
        match NEXT.compare_exchange_weak(next, end, Relaxed, Relaxed) {
            Ok(_) => {
                LIVE.fetch_add(1, Relaxed);
                return (base + start) as *mut u8;
            }
            Err(now) => next = now,
        }
    }
}

// SAFETY: arena blocks are aligned as asked, lie within the arena, and are never
// handed out twice (the arena is only unmapped with no live block); everything
// else is the system allocator's.
unsafe impl GlobalAlloc for Alloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if ACTIVE.load(Relaxed) {
            let p = arena_alloc(layout);
            if !p.is_null() {
                return p;
            }
        }
        // SAFETY: the caller's layout, as GlobalAlloc::alloc requires.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if in_arena(ptr) {
            LIVE.fetch_sub(1, Relaxed);
        } else {
            // SAFETY: a block of the system allocator, as the caller promises.
            unsafe { System.dealloc(ptr, layout) }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if !in_arena(ptr) {
            // SAFETY: as the caller promises.
            return unsafe { System.realloc(ptr, layout, new_size) };
        }
        // The arena's last block grows (or shrinks) in place.
        let base = ARENA.load(Relaxed);
        let (start, old_end) = (ptr as usize - base, ptr as usize - base + layout.size());
        if ACTIVE.load(Relaxed)
            && start + new_size <= ARENA_SIZE
            && NEXT
                .compare_exchange(old_end, start + new_size, Relaxed, Relaxed)
                .is_ok()
        {
            return ptr;
        }
        // SAFETY: the caller guarantees a valid layout for new_size.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        // SAFETY: as GlobalAlloc::realloc requires: copy what both hold, free the old.
        unsafe {
            let new = self.alloc(new_layout);
            if !new.is_null() {
                std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
            new
        }
    }
}
