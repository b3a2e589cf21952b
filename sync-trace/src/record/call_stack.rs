//! The entry stack of a traced call with what records derive from it:
//! the frames without the probe's own, and the caller a sync made from it
//! is classified as. The tracer makes one per distinct raw stack and
//! hands it to every call made from there.

use super::{
    caller::{classify, Caller},
    stack::{is_tracing_frame, Stack},
};

#[derive(Clone, Debug, PartialEq)]
pub struct CallStack {
    /// The frames below the probe's own, innermost first.
    pub stack: Stack,
    /// The caller of a sync from this stack with `start == end`, and without.
    callers: [Caller; 2],
}

impl CallStack {
    /// From the symbolized entry stack, innermost first, probe frames
    /// included.
    pub fn new(frames: Vec<String>) -> Self {
        let stack: Vec<String> = frames
            .into_iter()
            .skip_while(|f| is_tracing_frame(f))
            .collect();
        let callers = [classify(&stack, true), classify(&stack, false)];
        Self {
            stack: Stack::new(stack),
            callers,
        }
    }

    /// The caller of a sync made from this stack (`helper_range`:
    /// `start == end`).
    pub fn caller(&self, helper_range: bool) -> Caller {
        self.callers[usize::from(!helper_range)]
    }
}

impl Default for CallStack {
    /// No frames (none captured, or no entry seen).
    fn default() -> Self {
        Self::new(Vec::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_probe_frames_go_and_the_caller_is_the_classified_one() {
        let frames = [
            "0xffffffffc0001234",
            "arch_sync_kernel_mappings+0x4",
            "vmemmap_p4d_populate+0x6b",
        ];
        let c = CallStack::new(frames.iter().map(|f| f.to_string()).collect());
        assert_eq!(&*c.stack, &frames[1..]);
        assert_eq!(c.caller(true), classify(&frames, true));
        assert_eq!(c.caller(false), classify(&frames, false));
        assert_eq!(c.caller(true), Caller::PopulateHelper);
        assert_eq!(c.caller(false), Caller::Vmemmap);
        assert_eq!(CallStack::default().caller(false), Caller::Other);
    }
}
