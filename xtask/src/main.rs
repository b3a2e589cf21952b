use clap::{Parser, Subcommand};
use xtask::{bench, cmd_demo, cmd_vm, fixtures, fuzz, image, stress, test};

/// Developer tasks for sync-trace.
#[derive(Parser)]
#[command(name = "xtask")]
struct Cli {
    /// Install missing host packages (apt-get, never removing one) without asking.
    #[arg(long, global = true)]
    yes: bool,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Boot Debian's 6.12 kernel, hot-add memory at 32 TiB and 512 GiB and show what sync-trace
    /// reports; `--bug`: the missed sync on a 6.1 kernel without the fix.
    Demo(cmd_demo::DemoArgs),
    /// Boot a Debian guest kernel under QEMU and run a script in it.
    // Boxed: its many options make it much larger than the other variants.
    Vm(Box<cmd_vm::VmArgs>),
    /// Drive a guest's hotplug paths (DIMMs, virtio-mem, NVDIMM) over QMP while
    /// `sync-trace stress` traces inside; reports land in target/stress/.
    Stress(stress::StressArgs),
    /// Format check, clippy, unit tests, then the guest scenarios on every kernel.
    Test(test::TestArgs),
    /// Build the container image as an OCI layout (no container daemon needed).
    Image(image::ImageArgs),
    /// sync-trace's cost beside bpftrace and an untraced guest (QEMU TCG, 6.1 and 6.12) and
    /// the host pipeline's figures: one table, saved under target/bench/ (docs/performance.md).
    Bench(bench::BenchArgs),
    /// Record the replay fixtures (sync-trace/tests/fixtures) again from guest runs.
    Fixtures(fixtures::FixturesArgs),
    /// Fuzz every decoder and parser under libFuzzer, coverage-guided (1,000,000 inputs per
    /// target by default); prints the inputs run per target.
    Fuzz(fuzz::FuzzArgs),
}

fn main() {
    let cli = Cli::parse();
    if cli.yes {
        xtask::deps::assume_yes();
    }
    let result = match cli.command {
        Cmd::Demo(args) => cmd_demo::run(args),
        Cmd::Vm(args) => cmd_vm::run(*args),
        Cmd::Stress(args) => stress::run(args),
        Cmd::Test(args) => test::run(args),
        Cmd::Image(args) => image::run(args),
        Cmd::Fixtures(args) => fixtures::run(args),
        Cmd::Bench(args) => bench::run(args),
        Cmd::Fuzz(args) => fuzz::run(args),
    };
    match result {
        Ok(status) => std::process::exit(status),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::exit(2);
        }
    }
}
