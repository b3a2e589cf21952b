//! The stress report, built only from what a `StressObserver` sees: the
//! daemon's records and the cycle events. Records are attributed to the
//! cycle during which they happened (by their own timestamps: a population
//! by when it happened, a verdict with its population), not by when they
//! arrived, since `populate`, `paired` and `unsynced` are written late.
//!
//! - `model`: the report's types (its JSON form is their serde derive).
//! - `build`: `ReportBuilder`, the observer that collects and attributes,
//!   and the verdict.
//! - `text`: the terminal form (the HTML page is `super::html`).

mod build;
mod model;
mod text;

#[cfg(test)]
pub use self::model::{percentiles, EXIT_ERROR, EXIT_FOUND};
pub use self::{
    build::ReportBuilder,
    model::Report,
    text::{fmt_lat, fmt_ns},
};
