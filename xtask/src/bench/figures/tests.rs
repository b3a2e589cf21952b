//! The guest figures read from bench.sh output as a 6.12 guest prints it.

use super::*;

/// Lines as bench.sh prints them (a 6.12 guest's, shortened).
const OUT: &str = r#"=== step start
bpftrace=bpftrace v0.17.0
=== step startup
startup tool=sync-trace run=1 us=100000 hwm_kb=10240
startup tool=bpftrace run=1 us=1000000 hwm_kb=102400
startup tool=sync-trace run=2 us=300000 hwm_kb=10240
startup tool=bpftrace run=2 us=1200000 hwm_kb=102400
startup tool=sync-trace run=3 failed
=== step percall
percall method=none calls=4000 us=40000
attach: want=fentry attached arch_sync_kernel_mappings via fentry
percall method=fentry calls=4000 us=48000
lost=0 syncs=8002
attach: want=kprobe attached arch_sync_kernel_mappings via fentry
percall method=kprobe calls=4000 us=80000
lost=0 syncs=8002
=== step detect
mode=never level=p4d slot=504 addr=0xfffffc0000000000 ts_ns=166024425277 sync_ts_ns=0
{"event":"unsynced","ts_ns":166169845290,"cpu":null,"pid":null,"comm":null,"level":"p4d","slot":504,"addr":"0xfffffc0000000000","region":"other","source":"effect","populated_ns":166013016957,"grace_ns":100000000,"pgds_missing":4,"pgds_total":5,"walk_complete":true,"confirmed":true,"uncertain":false,"stack":[]}
=== step hotadd
hotadd cycle=0 mode=untraced addr=35184372088832 us=1000000 kernel_us=50000 blocks=1 state=online
hotadd cycle=1 mode=traced addr=35734127902720 us=1100000 kernel_us=50400 blocks=1 state=online
hotadd cycle=2 mode=traced addr=36283883716608 us=9000000 kernel_us= blocks=0 state=cat: no such file
hotadd cycle=3 mode=untraced addr=36833639530496 us=1200000 kernel_us= blocks=1 state=online
=== step devmap
devmap cycle=0 tracing=untraced mode=devmap phys=0x280000000000 start_ns=1000000 end_ns=41000000 gp_ns=20000000
devmap cycle=1 tracing=traced mode=devmap phys=0x288000000000 start_ns=50000000 end_ns=92000000 gp_ns=21000000
devmap cycle=3 tracing=traced mode=devmap phys=0x290000000000 start_ns=100000000 end_ns=130000000 gp_ns=-1
devmap cycle=2 tracing=traced memremap failed
=== step idle-few
idle spawned=10 procs=77 ticks=6 us=60000000 clk_tck=100
"#;

fn get<'a>(v: &'a [Figure], name: &str) -> &'a Figure {
    v.iter().find(|f| f.figure.starts_with(name)).unwrap()
}

#[test]
fn reads_every_figure_of_a_boot() {
    let v = guest_figures(&Output::parse(OUT), "6.12");
    let f = get(&v, "exec → ready");
    assert_eq!(
        (f.value, f.baseline, f.samples),
        (Some(200.0), Some(1100.0), 2)
    );
    assert_eq!(f.baseline_name, "bpftrace 0.17.0");
    assert_eq!(f.met(), Some(false));
    assert_eq!(get(&v, "peak RSS").ratio(), Some(0.1));
    // fentry: 12 µs per call traced, 10 untraced.
    let f = get(&v, "probe cost per sync call, fentry");
    assert_eq!((f.value, f.baseline), (Some(2000.0), Some(10000.0)));
    // kprobe was asked for, fentry attached: no figure.
    let f = get(&v, "probe cost per sync call, kprobe");
    assert_eq!(f.value, None);
    assert!(f.note.contains("via fentry"), "{}", f.note);
    let f = get(&v, "detection delay");
    assert!((f.value.unwrap() - 145.42).abs() < 0.01, "{f:?}");
    assert_eq!(f.met(), Some(true));
    // The kernel's part: the cycle whose block never came online is left out, and so is
    // the one without both kernel log lines.
    let f = get(&v, "hot-add cycle (DIMM add + online, in the kernel)");
    assert_eq!(
        (f.value, f.baseline, f.samples),
        (Some(50.4), Some(50.0), 1)
    );
    assert_eq!(f.met(), Some(true));
    // End to end: informative, every cycle that came online.
    let f = get(&v, "hot-add cycle, end to end");
    assert_eq!((f.value, f.baseline), (Some(1100.0), Some(1100.0)));
    assert_eq!(f.met(), None);
    // The module's own times, without the grace period: 21 ms traced, 20 untraced; a cycle
    // without them is left out, and so is one whose grace period was not timed.
    let f = get(&v, "devmap cycle (");
    assert_eq!(
        (f.value, f.baseline, f.samples),
        (Some(21.0), Some(20.0), 1)
    );
    assert_eq!(f.met(), Some(false));
    // Whole: informative, every cycle with the module's times (42 and 30 ms traced).
    let f = get(&v, "devmap cycle, whole");
    assert_eq!(
        (f.value, f.baseline, f.samples),
        (Some(36.0), Some(40.0), 2)
    );
    assert_eq!(f.met(), None);
    let f = get(&v, "idle CPU, 10 idle");
    assert_eq!(f.value, Some(0.1));
    assert_eq!(f.met(), Some(true));
    assert_eq!(get(&v, "sweep CPU per period").value, Some(75.0));
    // The step that never ran: a row that says so.
    let f = get(&v, "idle CPU, 0 idle");
    assert_eq!(f.value, None);
    assert_eq!(f.note, "the idle window did not complete");
}

#[test]
fn a_per_run_figure_short_of_runs_says_so() {
    let mut v = guest_figures(&Output::parse(OUT), "6.12");
    note_missing_runs(&mut v, 2, 10);
    // Two startup runs of each: nothing to say; one hot-add cycle of two asked for.
    assert_eq!(get(&v, "exec → ready").note, "");
    assert_eq!(
        get(&v, "hot-add cycle (DIMM").note,
        "1 of 2 runs gave a sample"
    );
    assert_eq!(get(&v, "devmap cycle (").note, "1 of 2 runs gave a sample");
    assert_eq!(get(&v, "devmap cycle, whole").note, "");
    // No value: the note says why already, nothing added.
    assert_eq!(
        get(&v, "idle CPU, 0 idle").note,
        "the idle window did not complete"
    );
}

#[test]
fn idle_cpu_is_the_process_time_and_the_kernel_timer_time() {
    let out = "=== step idle-few\n\
        idle sweep=kernel spawned=10 procs=77 ticks=9 ns=30000000 wakeups=120 us=60000000 clk_tck=100 timer_readings=1250 timer_changes=0 timer_us=25000\n\
        idle sweep=user spawned=10 procs=77 ticks=300 ns=3000000000 wakeups=1260 us=60000000 clk_tck=100 timer_readings=0\n";
    let v = guest_figures(&Output::parse(out), "6.12");
    // schedstat's ns before ticks (30 ms, not 90), the timer's 25 ms added.
    let f = get(&v, "idle CPU, 10 idle");
    assert!((f.value.unwrap() - 0.0916).abs() < 1e-3, "{f:?}");
    assert_eq!(f.met(), Some(true));
    assert_eq!(f.baseline, Some(5.0));
    assert_eq!(f.baseline_name, "sweep from userspace");
    let f = get(&v, "idle wake-ups per second, 10");
    assert_eq!((f.value, f.baseline), (Some(2.0), Some(21.0)));
    let f = get(&v, "sweep CPU per period");
    assert_eq!(f.value, Some(20.0));
    assert_eq!(f.note, "the kernel timer's callback, per reading");
}

#[test]
fn every_guest_figure_belongs_to_a_step() {
    use crate::bench::Step;
    let v = guest_figures(&Output::parse(OUT), "6.12");
    for f in &v {
        assert!(Step::of_figure(&f.figure).is_some(), "{}", f.figure);
    }
    assert_eq!(
        Step::of_figure("hot-add cycle, end to end (QMP, ACPI, polling)"),
        Some(Step::Hotadd)
    );
    assert_eq!(Step::of_figure("pipeline_events_per_s"), None);
}
