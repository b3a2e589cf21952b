//! `struct st_scan`: what the scan program writes of init_mm's table
//! and of a walk of pgd_list.

use std::mem::{offset_of, size_of};

use super::{HALF, PTRS, SLOT_WORDS};

/// `struct st_scan`, exactly as the scan program writes it.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct RawScan {
    pub ts_ns: u64,
    pub end_ns: u64,
    pub page_offset_base: u64,
    pub vmalloc_base: u64,
    pub vmemmap_base: u64,
    pub sme_me_mask: u64,
    pub pgdir_shift: u32,
    pub status: u32,
    pub pgds: u32,
    pub page_size: u32,
    pub top: [u64; PTRS],
    pub missing: [u32; HALF],
    pub mismatch: [u32; HALF],
    pub slots: [u64; SLOT_WORDS],
    pub cursor: u64,
    pub max_run_ns: u64,
    pub busy_ns: u64,
    pub runs: u32,
    pub restarts: u32,
    pub core: u32,
    pub nslots: u32,
    pub list: [u16; HALF],
    pub list_off: u32,
    pub pt_mm_off: u32,
    pub refcount_off: u32,
    pub mm_pgd_off: u32,
}

const SCAN_SLOTS_OFF: usize = 64 + 8 * PTRS + 8 * HALF;
const _: () = assert!(size_of::<RawScan>() == SCAN_SLOTS_OFF + 8 * SLOT_WORDS + 40 + 2 * HALF + 16);
const _: () = assert!(offset_of!(RawScan, top) == 64);
const _: () = assert!(offset_of!(RawScan, slots) == SCAN_SLOTS_OFF);
const _: () = assert!(offset_of!(RawScan, list) == SCAN_SLOTS_OFF + 8 * SLOT_WORDS + 40);

impl RawScan {
    /// An all-zero result (no status bits: not a scan yet).
    pub const fn zeroed() -> Self {
        Self {
            ts_ns: 0,
            end_ns: 0,
            page_offset_base: 0,
            vmalloc_base: 0,
            vmemmap_base: 0,
            sme_me_mask: 0,
            pgdir_shift: 0,
            status: 0,
            pgds: 0,
            page_size: 0,
            top: [0; PTRS],
            missing: [0; HALF],
            mismatch: [0; HALF],
            slots: [0; SLOT_WORDS],
            cursor: 0,
            max_run_ns: 0,
            busy_ns: 0,
            runs: 0,
            restarts: 0,
            core: 0,
            nslots: 0,
            list: [0; HALF],
            list_off: 0,
            pt_mm_off: 0,
            refcount_off: 0,
            mm_pgd_off: 0,
        }
    }
}
