//! `search`: the nearest points to a query vector.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use serde_json::json;
use vellum::{Filter, SearchFilter, SearchParams};

use crate::BoxError;
use crate::open::open_for_reading;

/// The search options of `vellum search`.
pub(crate) struct Options {
    pub(crate) ef: Option<usize>,
    pub(crate) exact: bool,
    /// The filter's JSON form, unparsed.
    pub(crate) filter: Option<String>,
    /// Print each hit's payload.
    pub(crate) with_payload: bool,
}

/// `vellum search`: parses the comma-separated query (and the filter) and prints the hits
/// with the time taken.
pub(crate) fn search(
    db: PathBuf,
    collection: String,
    query: String,
    k: usize,
    options: Options,
    json: bool,
) -> Result<ExitCode, BoxError> {
    let Options {
        ef,
        exact,
        filter,
        with_payload,
    } = options;
    let filter: Option<Filter> = filter.as_deref().map(str::parse).transpose()?;
    let q: Vec<f32> = query
        .split(',')
        .map(|s| {
            s.trim()
                .parse::<f32>()
                .map_err(|e| format!("query component {s:?}: {e}"))
        })
        .collect::<Result<_, _>>()?;
    let database = open_for_reading(&db)?;
    let c = database.collection(&collection)?;
    let started = Instant::now();
    let hits = c.search_with(
        &q,
        k,
        &SearchParams {
            ef,
            exact,
            filter: filter.as_ref().map(SearchFilter::Where),
            with_payload,
            with_vector: false,
        },
    )?;
    let micros = started.elapsed().as_micros();
    if json {
        let rows: Vec<_> = hits
            .iter()
            .map(|h| {
                let mut row = json!({"id": h.id, "distance": h.distance});
                if with_payload {
                    row["payload"] = payload_json(h.payload.as_deref());
                }
                row
            })
            .collect();
        println!("{}", json!({"hits": rows, "micros": micros}));
    } else {
        for h in &hits {
            match (with_payload, &h.payload) {
                (true, Some(p)) => {
                    println!(
                        "{:>12}  {:.6}  {}",
                        h.id,
                        h.distance,
                        String::from_utf8_lossy(p)
                    )
                }
                (true, None) => println!("{:>12}  {:.6}  (no payload)", h.id, h.distance),
                (false, _) => println!("{:>12}  {:.6}", h.id, h.distance),
            }
        }
        println!("({} hits in {micros} us)", hits.len());
    }
    Ok(ExitCode::SUCCESS)
}

/// A payload in JSON output: the document itself if it is JSON, else its bytes as a string
/// (lossy UTF-8); `null` without one.
fn payload_json(payload: Option<&[u8]>) -> serde_json::Value {
    match payload {
        None => serde_json::Value::Null,
        Some(bytes) => serde_json::from_slice(bytes)
            .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(bytes).into())),
    }
}
