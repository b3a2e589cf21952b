//! xtask: developer tasks for sync-trace, above all running it inside guest kernels.

pub mod apt;
pub mod bench;
pub mod cmd;
pub mod cmd_demo;
pub mod cmd_vm;
pub mod deps;
pub mod fixtures;
pub mod fuzz;
pub mod guest_binary;
pub mod image;
pub mod initramfs;
pub mod install_plan;
pub mod kbuild;
pub mod kernels;
pub mod mem;
pub mod modules;
pub mod qemu;
pub mod qmp;
pub mod reverted_kernel;
pub mod sid_root;
pub mod stress;
pub mod test;
pub mod vm;
