//! Livepatches that replace a traced function, read from sysfs
//! (CONFIG_LIVEPATCH): `/sys/kernel/livepatch/<patch>/<object>/<function>,<sympos>/`,
//! where the object of a vmlinux function is `vmlinux`.
//!
//! A livepatch does not take calls away from the probes: callers still enter
//! the old function, whose ftrace site runs the livepatch's handler, which sends
//! execution on to the new function. A kprobe there (an ftrace-based one, with no
//! post-handler) still fires, a kretprobe fires when the new function returns,
//! and an fentry/fexit trampoline shares the site with the livepatch (fexit then
//! runs around the new function). A trampoline attached *after* the livepatch is
//! another matter on some kernels (6.1 among them: it bypasses the patch and
//! ftrace disables itself), so a target patched when `run` starts gets kprobes
//! (kernel/attach.rs), and the patch is named in its attach line and in
//! `probe`'s report.

use std::{fs, path::Path};

/// Where the kernel lists the livepatches it has.
pub const SYSFS_ROOT: &str = "/sys/kernel/livepatch";

/// The patches under `root` that replace the vmlinux function `symbol`,
/// sorted, each as `<patch>` or, while it is being disabled or enabled,
/// `<patch> (in transition)`. Nothing when `root` does not exist (no
/// livepatch support, or none loaded) or cannot be read.
pub fn patches_of(root: &Path, symbol: &str) -> Vec<String> {
    let Ok(patches) = fs::read_dir(root) else {
        return Vec::new();
    };
    let prefix = format!("{symbol},");
    let mut v: Vec<String> = patches
        .flatten()
        .filter(|p| {
            fs::read_dir(p.path().join("vmlinux")).is_ok_and(|funcs| {
                funcs
                    .flatten()
                    .any(|f| f.file_name().to_string_lossy().starts_with(&prefix))
            })
        })
        .filter(|p| read_flag(&p.path().join("enabled")) != Some(false))
        .map(|p| {
            let name = p.file_name().to_string_lossy().into_owned();
            if read_flag(&p.path().join("transition")) == Some(true) {
                format!("{name} (in transition)")
            } else {
                name
            }
        })
        .collect();
    v.sort();
    v
}

/// A sysfs `0`/`1` file; `None` when absent or anything else.
fn read_flag(path: &Path) -> Option<bool> {
    match fs::read_to_string(path).ok()?.trim() {
        "0" => Some(false),
        "1" => Some(true),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sysfs-like tree: `patch` with `enabled`, `transition` and the
    /// function directories `object/func,sympos`.
    fn patch(root: &Path, name: &str, enabled: &str, transition: &str, funcs: &[&str]) {
        let dir = root.join(name);
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("enabled"), enabled).unwrap();
        fs::write(dir.join("transition"), transition).unwrap();
        for f in funcs {
            fs::create_dir_all(dir.join(f)).unwrap();
        }
    }

    #[test]
    fn finds_the_patches_of_a_vmlinux_function() {
        let root = std::env::temp_dir().join(format!("st-livepatch-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        assert!(patches_of(&root, "arch_sync_kernel_mappings").is_empty());
        patch(
            &root,
            "b_patch",
            "1\n",
            "1\n",
            &["vmlinux/arch_sync_kernel_mappings,1"],
        );
        patch(
            &root,
            "a_patch",
            "1\n",
            "0\n",
            &[
                "vmlinux/sync_global_pgds,1",
                "vmlinux/arch_sync_kernel_mappings,2",
            ],
        );
        // Being disabled (the directory goes once that transition ends), a name
        // that only starts alike, and the same name in a module's object.
        patch(
            &root,
            "c_off",
            "0\n",
            "0\n",
            &["vmlinux/arch_sync_kernel_mappings,1"],
        );
        patch(
            &root,
            "d_other",
            "1\n",
            "0\n",
            &[
                "vmlinux/arch_sync_kernel_mappings_x,1",
                "kvm/arch_sync_kernel_mappings,1",
            ],
        );
        assert_eq!(
            patches_of(&root, "arch_sync_kernel_mappings"),
            ["a_patch", "b_patch (in transition)"]
        );
        assert_eq!(patches_of(&root, "sync_global_pgds"), ["a_patch"]);
        assert!(patches_of(&root, "init_memory_mapping").is_empty());
        fs::remove_dir_all(&root).unwrap();
    }
}
