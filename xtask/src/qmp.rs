//! A minimal synchronous QMP client.
//!
//! Plain serde_json over a `UnixStream` rather than the `qapi` crate: we send three commands
//! and read their replies in order, and qapi's client side is built around async I/O
//! (tokio/futures) and a generated schema — far more than this needs.

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

pub struct Qmp {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    /// Asynchronous events read while waiting for a command's reply, for [`Qmp::wait_event`].
    events: Vec<Value>,
}

impl Qmp {
    /// Connects to QEMU's QMP socket (retrying while QEMU creates it), reads the greeting
    /// and leaves capabilities negotiation mode.
    pub fn connect(path: &Path, wait: Duration) -> Result<Qmp> {
        let start = Instant::now();
        let stream = loop {
            match UnixStream::connect(path) {
                Ok(s) => break s,
                Err(e) if start.elapsed() < wait => {
                    let _ = e;
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => {
                    return Err(e)
                        .with_context(|| format!("cannot connect to QMP at {}", path.display()))
                }
            }
        };
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        let mut qmp = Qmp {
            reader: BufReader::new(stream.try_clone()?),
            writer: stream,
            events: Vec::new(),
        };
        let greeting = qmp.read_message()?;
        if greeting.get("QMP").is_none() {
            bail!("unexpected QMP greeting: {greeting}");
        }
        qmp.execute("qmp_capabilities", json!({}))?;
        Ok(qmp)
    }

    fn read_message(&mut self) -> Result<Value> {
        let mut line = String::new();
        if self
            .reader
            .read_line(&mut line)
            .context("reading from QMP")?
            == 0
        {
            bail!("QEMU closed the QMP socket");
        }
        serde_json::from_str(&line).with_context(|| format!("bad QMP message {line:?}"))
    }

    /// Runs one command; returns its `return` value, or the QMP error as an error.
    pub fn execute(&mut self, command: &str, arguments: Value) -> Result<Value> {
        let msg = json!({ "execute": command, "arguments": arguments });
        writeln!(self.writer, "{msg}")?;
        loop {
            let reply = self.read_message()?;
            if let Some(ret) = reply.get("return") {
                return Ok(ret.clone());
            }
            if let Some(err) = reply.get("error") {
                bail!(
                    "QMP {command} failed: {}",
                    err.get("desc").and_then(Value::as_str).unwrap_or("?")
                );
            }
            // Anything else is an asynchronous event (e.g. ACPI_DEVICE_OST): kept for
            // wait_event.
            if reply.get("event").is_some() {
                self.events.push(reply);
            }
        }
    }

    /// Waits up to `within` for an event named `name` whose `data` satisfies `matches`
    /// (events that came earlier, during a command, count too); returns its `data`.
    pub fn wait_event(
        &mut self,
        name: &str,
        matches: impl Fn(&Value) -> bool,
        within: Duration,
    ) -> Result<Value> {
        let r = self.wait_event_inner(name, matches, within);
        // Commands wait longer for their replies.
        self.writer
            .set_read_timeout(Some(Duration::from_secs(30)))?;
        r
    }

    fn wait_event_inner(
        &mut self,
        name: &str,
        matches: impl Fn(&Value) -> bool,
        within: Duration,
    ) -> Result<Value> {
        let deadline = Instant::now() + within;
        loop {
            let hit = |e: &Value| {
                e.get("event").and_then(Value::as_str) == Some(name)
                    && matches(e.get("data").unwrap_or(&Value::Null))
            };
            if let Some(i) = self.events.iter().position(hit) {
                let e = self.events.remove(i);
                return Ok(e.get("data").cloned().unwrap_or(Value::Null));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                bail!("no {name} event within {} s", within.as_secs());
            }
            self.writer
                .set_read_timeout(Some(left.min(Duration::from_secs(1))))?;
            let mut line = String::new();
            match self.reader.read_line(&mut line) {
                Ok(0) => bail!("QEMU closed the QMP socket"),
                Ok(_) => {
                    let v: Value = serde_json::from_str(&line)
                        .with_context(|| format!("bad QMP message {line:?}"))?;
                    if v.get("event").is_some() {
                        self.events.push(v);
                    }
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => return Err(e).context("reading from QMP"),
            }
        }
    }

    /// Plugs a RAM-backed DIMM of `size` bytes at guest-physical `addr`: a memory backend
    /// object plus a `pc-dimm` device, which the guest learns about through ACPI hotplug.
    pub fn hot_add_dimm(&mut self, index: usize, addr: u64, size: u64) -> Result<()> {
        let mem = format!("hotmem{index}");
        self.execute(
            "object-add",
            json!({ "qom-type": "memory-backend-ram", "id": mem, "size": size }),
        )?;
        self.execute("device_add", json!({ "driver": "pc-dimm", "id": format!("dimm{index}"), "memdev": mem, "addr": addr }))?;
        Ok(())
    }
}
