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
//! relocated RELRO, heap, stack) are never touched.
//!
//! (A debugger's breakpoints or uprobes in the monitor's code would be dropped
//! with the pages: this is for production, not for tracing the monitor.)

use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

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

/// Records the read-only `PT_LOAD` segments of every loaded object (the binary,
/// and libc, ld.so… when dynamic), shrunk to whole pages.
pub fn init() {
    // SAFETY: dl_iterate_phdr calls `each` with valid info for each object.
    unsafe { libc::dl_iterate_phdr(Some(each), std::ptr::null_mut()) };
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

/// Gives back what the monitor does not use: free heap, and every page of code
/// and read-only data (what runs next faults back in).
#[inline(never)]
pub fn shrink() {
    // SAFETY: plain call; it only returns free heap memory to the kernel.
    unsafe { libc::malloc_trim(0) };
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
