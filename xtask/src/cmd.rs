//! The one way xtask runs host programs: spawn, check the exit status, and on failure say
//! what ran and the last line of its stderr.

use anyhow::{bail, Context, Result};
use std::io::Write;
use std::process::{Command, Output, Stdio};

/// `program arg…` for messages (arguments past the sixth elided).
pub fn describe(cmd: &Command) -> String {
    let mut words = vec![cmd.get_program().to_string_lossy().to_string()];
    let args: Vec<String> = cmd
        .get_args()
        .map(|a| a.to_string_lossy().to_string())
        .collect();
    words.extend(args.iter().take(6).cloned());
    if args.len() > 6 {
        words.push("…".into());
    }
    words.join(" ")
}

/// The last non-empty line of a program's output, for one-line error messages.
pub fn last_line(bytes: &[u8]) -> String {
    let s = String::from_utf8_lossy(bytes);
    s.lines()
        .rfind(|l| !l.trim().is_empty())
        .unwrap_or("(no output)")
        .trim()
        .to_string()
}

fn spawn_error(cmd: &Command) -> String {
    format!("cannot run {}", cmd.get_program().to_string_lossy())
}

/// Runs `cmd` with stdout and stderr captured (stdin, when `input` is given, fed from it);
/// only a failure to start is an error.
pub fn output_any(cmd: &mut Command, input: Option<&[u8]>) -> Result<Output> {
    let Some(input) = input else {
        return cmd.output().with_context(|| spawn_error(cmd));
    };
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| spawn_error(cmd))?;
    let mut stdin = child.stdin.take().context("the child has no stdin")?;
    let data = input.to_vec();
    // A separate writer, so a child that writes much before reading all of its input cannot
    // deadlock against us.
    let writer = std::thread::spawn(move || stdin.write_all(&data));
    let out = child.wait_with_output()?;
    let _ = writer.join();
    Ok(out)
}

/// Runs `cmd` with its output captured; an error when it cannot start or exits non-zero,
/// naming the command, its status and the last line of its stderr.
pub fn output(cmd: &mut Command) -> Result<Output> {
    output_with_input(cmd, None)
}

/// [`output`], with `input` on the child's stdin.
pub fn output_with_input(cmd: &mut Command, input: Option<&[u8]>) -> Result<Output> {
    let out = output_any(cmd, input)?;
    if !out.status.success() {
        bail!(
            "`{}` failed ({}): {}",
            describe(cmd),
            out.status,
            last_line(&out.stderr)
        );
    }
    Ok(out)
}

/// Runs `cmd` with the terminal (or whatever its stdio was set to); an error when it
/// cannot start or exits non-zero.
pub fn status(cmd: &mut Command) -> Result<()> {
    let st = cmd.status().with_context(|| spawn_error(cmd))?;
    if !st.success() {
        bail!("`{}` failed ({st})", describe(cmd));
    }
    Ok(())
}

/// Whether `cmd` starts and exits 0 (output discarded): for probes.
pub fn succeeds(cmd: &mut Command) -> bool {
    output_any(cmd, None).is_ok_and(|o| o.status.success())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_the_last_stderr_line() {
        let e = output(Command::new("sh").args(["-c", "echo one >&2; echo two >&2; exit 3"]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("`sh -c"), "{e}");
        assert!(e.contains("exit status: 3"), "{e}");
        assert!(e.ends_with(": two"), "{e}");
    }

    #[test]
    fn feeds_stdin() {
        let out = output_with_input(&mut Command::new("cat"), Some(b"abc")).unwrap();
        assert_eq!(out.stdout, b"abc");
        assert!(!succeeds(&mut Command::new("false")));
        assert!(output(&mut Command::new("/nonexistent/x")).is_err());
    }
}
