//! JSON-lines output for the example tools: one object per line, flushed at once so that a
//! script reading the pipe sees each event as it happens.

use std::io::Write;

/// Prints `value` as one line on stdout and flushes. Output errors (a closed pipe) are ignored:
/// the tools keep serving.
pub fn print_json_line(value: &serde_json::Value) {
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{value}");
    let _ = stdout.flush();
}
