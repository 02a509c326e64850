//! `keepalive report` and `watch --report`: one self-contained HTML page
//! (inline SVG and CSS, no script, nothing fetched) telling the keepalive
//! story of each connection.
//!
//! - `input`: watch's, demo's and discover's JSON lines (and watch's own
//!   records) as [`input::Input`]s;
//! - `layout`: the pure layout model, fed one input at a time: which lanes,
//!   in which order, and the counts behind everything else; `lane`: one
//!   connection's marks;
//! - `discover`: discover's trials on an idle-time axis;
//! - `html`, `sections`, `svg`, `words`, `escape`: the page.

pub mod discover;
mod escape;
mod html;
pub mod input;
mod lane;
pub mod layout;
mod sections;
mod svg;
#[cfg(test)]
mod tests;
mod words;

use std::{
    io::{BufRead, Write},
    path::{Path, PathBuf},
};

use anyhow::Context as _;

pub use self::{html::Meta, layout::Layout};
use crate::error::usage;

/// Feeds every line of `reader` to `layout`; a line that is not one of
/// ours is a usage error naming it (`name:LINE: ...`). Returns the number
/// of lines read.
pub fn read_ndjson(
    mut reader: impl BufRead,
    name: &str,
    layout: &mut Layout,
) -> anyhow::Result<u64> {
    let mut line = String::with_capacity(512);
    let mut number = 0u64;
    loop {
        line.clear();
        let read = reader
            .read_line(&mut line)
            .with_context(|| format!("reading {name}"))?;
        if read == 0 {
            return Ok(number);
        }
        number += 1;
        let text = line.trim();
        if text.is_empty() {
            continue;
        }
        let input = input::parse_line(text).map_err(|e| {
            usage(format!(
                "{name}:{number}: {e} (report reads the lines of watch, demo or discover --json)"
            ))
        })?;
        layout.push(input);
    }
}

/// The page for `layout`, as HTML.
pub fn render(layout: Layout, meta: &Meta) -> String {
    html::page(&layout.finish(), meta)
}

/// Writes `html` to `path` whole or not at all: into a temporary file
/// beside it, renamed over it once complete. `-` is stdout.
pub fn write_page(path: &Path, html: &str) -> anyhow::Result<()> {
    if path == Path::new("-") {
        let mut out = std::io::stdout().lock();
        return out
            .write_all(html.as_bytes())
            .and_then(|()| out.flush())
            .context("writing the report to stdout");
    }
    let temporary = temporary_beside(path);
    let written = std::fs::write(&temporary, html).and_then(|()| std::fs::rename(&temporary, path));
    if let Err(err) = written {
        let _ = std::fs::remove_file(&temporary);
        return Err(err).with_context(|| format!("writing {}", path.display()));
    }
    Ok(())
}

fn temporary_beside(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".tmp-{}", std::process::id()));
    path.with_file_name(name)
}

/// Checks before any work that `path` can be written: its directory exists
/// and is not the path itself (a usage error otherwise).
pub fn check_output(path: &Path) -> anyhow::Result<()> {
    if path == Path::new("-") {
        return Ok(());
    }
    if path.is_dir() {
        return Err(usage(format!(
            "{}: is a directory, not a file to write",
            path.display()
        )));
    }
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        return Err(usage(format!(
            "{}: no such directory {}",
            path.display(),
            dir.display()
        )));
    }
    Ok(())
}
