//! Logging, set up before the configuration is read (so that what goes wrong while reading it
//! is logged) and then set to the configured level and format.

use std::io::IsTerminal;

use tracing_subscriber::{EnvFilter, Layer, Registry, layer::SubscriberExt, reload, util::SubscriberInitExt};

use crate::config::{Config, LogFormat};

type Filtered = tracing_subscriber::layer::Layered<reload::Layer<EnvFilter, Registry>, Registry>;
type Format = Box<dyn Layer<Filtered> + Send + Sync>;

/// The handles that set the level and format once the configuration is known.
pub struct Logging {
    filter: reload::Handle<EnvFilter, Registry>,
    format: reload::Handle<Format, Filtered>,
}

fn format_layer(format: LogFormat) -> Format {
    match format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_ansi(std::io::stderr().is_terminal())
            .with_writer(std::io::stderr)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .with_writer(std::io::stderr)
            .boxed(),
    }
}

fn filter(level: &str) -> EnvFilter {
    EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level))
}

/// Text at `info` (or `RUST_LOG`) on standard error, until [`Logging::configure`].
pub fn init() -> Logging {
    let (filter, filter_handle) = reload::Layer::new(filter("info"));
    let (format, format_handle) = reload::Layer::new(format_layer(LogFormat::Text));
    let _ = tracing_subscriber::registry().with(filter).with(format).try_init();
    Logging { filter: filter_handle, format: format_handle }
}

impl Logging {
    /// `[log] level` and `format`.
    pub fn configure(&self, config: &Config) {
        let _ = self.filter.reload(filter(&config.log.level));
        if config.log.format != LogFormat::Text {
            let _ = self.format.reload(format_layer(config.log.format));
        }
    }
}
