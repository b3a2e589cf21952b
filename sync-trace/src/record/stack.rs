//! Kernel stacks as records carry them: frames as `symbol+0xoff` (or
//! `symbol+0xoff [module]`), innermost first, or `0x…` where no symbol
//! is known.
//!
//! A [`Stack`] is shared, not owned: the records of every call made from
//! one call site hold the same frames, symbolized once, and the same JSON
//! array of them, rendered once (the tracer keeps one per distinct stack).

use std::{
    fmt,
    ops::Deref,
    sync::{Arc, OnceLock},
};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The frames of a stack, shared by every record that carries it; empty
/// without an allocation.
#[derive(Clone, Default)]
pub struct Stack(Option<Arc<Frames>>);

struct Frames {
    frames: Box<[String]>,
    /// The JSON array of the frames, made the first time it is written.
    json: OnceLock<Box<str>>,
}

impl Stack {
    pub fn new(frames: Vec<String>) -> Self {
        if frames.is_empty() {
            return Self(None);
        }
        Self(Some(Arc::new(Frames {
            frames: frames.into_boxed_slice(),
            json: OnceLock::new(),
        })))
    }

    /// The frames as a JSON array, exactly as serde_json writes them.
    pub fn json(&self) -> &str {
        match &self.0 {
            None => "[]",
            Some(f) => f.json.get_or_init(|| {
                serde_json::to_string(&f.frames)
                    .expect("strings always serialize")
                    .into_boxed_str()
            }),
        }
    }
}

impl Deref for Stack {
    type Target = [String];

    fn deref(&self) -> &[String] {
        self.0.as_ref().map_or(&[], |f| &f.frames)
    }
}

impl From<Vec<String>> for Stack {
    fn from(frames: Vec<String>) -> Self {
        Self::new(frames)
    }
}

impl PartialEq for Stack {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl fmt::Debug for Stack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl Serialize for Stack {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

impl<'de> Deserialize<'de> for Stack {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Vec::<String>::deserialize(d).map(Self::new)
    }
}

/// The function of a frame: `vmemmap_populate` of `vmemmap_populate+0x1f4`.
pub fn function_of(frame: &str) -> &str {
    // A byte scan: both separators are ASCII (a char-set split was the
    // costliest step of classifying a stack).
    let end = frame
        .bytes()
        .position(|b| b == b'+' || b == b' ')
        .unwrap_or(frame.len());
    &frame[..end]
}

/// A frame the probe itself adds on top of the traced call: the BPF
/// program and its trampoline (not in kallsyms, or `bpf_trampoline_*`) and
/// ftrace's trampoline.
pub fn is_tracing_frame(frame: &str) -> bool {
    let f = function_of(frame);
    f.starts_with("0x") || f.starts_with("bpf_trampoline") || f.starts_with("ftrace_trampoline")
}

/// The sync functions, which are themselves traced (with the 5- and 4-level
/// halves `sync_global_pgds()` calls): never the caller of a sync.
pub fn is_traced_function(function: &str) -> bool {
    matches!(
        function,
        "arch_sync_kernel_mappings"
            | "sync_global_pgds"
            | "sync_global_pgds_l4"
            | "sync_global_pgds_l5"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames() {
        assert_eq!(
            function_of("st_populate_write+0x40 [st_populate]"),
            "st_populate_write"
        );
        assert!(is_tracing_frame("0xffffffffc0001234"));
        assert!(is_tracing_frame("bpf_trampoline_6442+0x40"));
        assert!(is_tracing_frame("ftrace_trampoline+0x1b"));
        assert!(!is_tracing_frame("vmemmap_populate+0x1f4"));
        assert!(is_traced_function("sync_global_pgds_l4"));
    }

    #[test]
    fn a_stack_writes_the_json_serde_writes() {
        for frames in [
            vec![],
            vec![
                "a+0x1".to_string(),
                "m+0x2 [mod]".into(),
                "q\"\\\u{1}é".into(),
            ],
        ] {
            let s = Stack::new(frames.clone());
            assert_eq!(s.json(), serde_json::to_string(&frames).unwrap());
            assert_eq!(serde_json::to_string(&s).unwrap(), s.json());
            assert_eq!(&*s, &frames[..]);
            let back: Stack = serde_json::from_str(s.json()).unwrap();
            assert_eq!(back, s);
        }
    }
}
