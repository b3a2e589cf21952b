//! The kernel layout a run observed: the `layout` record, written first.

use serde::{Deserialize, Serialize};
use sync_trace_common::{Layout, Paging};

use super::Hex;

/// The kernel layout the run observed (first record).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LayoutRecord {
    pub ts_ns: u64,
    pub kernel: String,
    pub paging: Paging,
    pub page_offset_base: Hex,
    pub vmalloc_base: Hex,
    pub vmemmap_base: Hex,
    pub kernel_boundary: usize,
    /// Present kernel top-level slots at start.
    pub present: Vec<usize>,
    /// `sizeof(struct page)` from the kernel's BTF, when known (it places
    /// the memory map of `__populate_section_memmap` calls).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub struct_page: Option<u64>,
}

impl LayoutRecord {
    /// The layout this record describes (KASAN is not recorded: it changes
    /// no slot arithmetic).
    pub fn layout(&self) -> Layout {
        Layout {
            paging: self.paging,
            page_offset_base: self.page_offset_base.0,
            vmalloc_base: self.vmalloc_base.0,
            vmemmap_base: self.vmemmap_base.0,
            kasan: false,
            struct_page: self.struct_page,
        }
    }
}
