//! Small helpers shared by the example binaries (`hbonecat`, and later `gateway`, `waypoint`,
//! `ztunnel`). The binaries themselves live in `src/bin/` and stay thin: they compose the library
//! crates and parse their command lines.

pub mod json_lines;
pub mod shutdown;
