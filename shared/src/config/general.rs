//! The variables every binary reads before any section: the optional TOML file, the data
//! folder, and logging.

use super::definition::{section, Fallback, Kind, Variable, ALL, BUILDER};

section! {
    title: "General",
    intro: "The optional file of defaults, the local data folder, and logs.",
    CONFIG = Variable::new(
        "KILN_CONFIG",
        Kind::Path,
        Fallback::Otherwise("none"),
        ALL,
        "a TOML file of defaults (`build_timeout_secs = 600`); a variable set in the environment wins",
    )
    .hint("/etc/kiln/kiln.toml")
    .env_only();
    DATA_DIR = Variable::new(
        "KILN_DATA_DIR",
        Kind::Path,
        Fallback::Value(".kiln"),
        BUILDER,
        "where a binary keeps its local files (`work/` defaults to inside it)",
    )
    .example("/var/lib/kiln");
    LOG_FORMAT = Variable::new(
        "KILN_LOG_FORMAT",
        Kind::OneOf(&["text", "json"]),
        Fallback::Value("text"),
        ALL,
        "the format of the logs on stderr (`json` for a log shipper)",
    )
    .details("Read from the environment only: logging starts before the file is read.")
    .env_only();
    RUST_LOG = Variable::new(
        "RUST_LOG",
        Kind::Format("a `tracing` filter (`info,kiln_builder=debug`)"),
        Fallback::Value("info"),
        ALL,
        "which logs are written",
    )
    .details("Read from the environment only: logging starts before the file is read.")
    .env_only();
}
