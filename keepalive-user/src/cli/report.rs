//! `keepalive report [FILE | -] -o OUT.html`: the JSON lines of watch,
//! demo or discover drawn as one self-contained HTML page.

use std::{io::BufReader, path::PathBuf, process::ExitCode};

use anyhow::Context as _;

use crate::{
    error::usage,
    report::{self, Layout, Meta, layout::DEFAULT_LANES},
};

/// The most lanes a page may draw: beyond that it is no longer a picture.
const MAX_LANES: usize = 10_000;

#[derive(clap::Args, Debug)]
pub struct ReportArgs {
    /// JSON lines from `watch --json`, `demo --json` or `discover --json`;
    /// `-` (the default) reads stdin.
    #[arg(default_value = "-")]
    pub input: PathBuf,
    /// The HTML file to write (`-`: stdout). Written whole or not at all.
    #[arg(short, long)]
    pub output: PathBuf,
    /// Connections drawn one lane each, the most interesting first; the
    /// rest are counted in the summary and the histograms.
    #[arg(long, default_value_t = DEFAULT_LANES)]
    pub lanes: usize,
}

pub fn run(args: &ReportArgs) -> anyhow::Result<ExitCode> {
    if args.lanes > MAX_LANES {
        return Err(usage(format!("--lanes must be from 0 to {MAX_LANES}")));
    }
    report::check_output(&args.output)?;
    let mut layout = Layout::new(args.lanes);
    let stdin = args.input.as_os_str() == "-";
    let name = if stdin {
        "-".to_string()
    } else {
        args.input.display().to_string()
    };
    let lines = if stdin {
        report::read_ndjson(std::io::stdin().lock(), "stdin", &mut layout)?
    } else {
        let file = std::fs::File::open(&args.input).map_err(|e| usage(format!("{name}: {e}")))?;
        report::read_ndjson(
            BufReader::with_capacity(256 * 1024, file),
            &name,
            &mut layout,
        )
        .with_context(|| format!("reading {name}"))?
    };
    let meta = Meta {
        source: name,
        lines: Some(lines),
        lanes_asked: args.lanes,
    };
    report::write_page(&args.output, &report::render(layout, &meta))?;
    Ok(ExitCode::SUCCESS)
}
