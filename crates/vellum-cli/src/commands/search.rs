//! `search`: the nearest points to a query vector.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use serde_json::json;
use vellum::SearchParams;

use crate::BoxError;
use crate::open::open_for_reading;

/// `vellum search`: parses the comma-separated query and prints the hits with the time taken.
pub(crate) fn search(
    db: PathBuf,
    collection: String,
    query: String,
    k: usize,
    ef: Option<usize>,
    exact: bool,
    json: bool,
) -> Result<ExitCode, BoxError> {
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
            ..Default::default()
        },
    )?;
    let micros = started.elapsed().as_micros();
    if json {
        let rows: Vec<_> = hits
            .iter()
            .map(|h| json!({"id": h.id, "distance": h.distance}))
            .collect();
        println!("{}", json!({"hits": rows, "micros": micros}));
    } else {
        for h in &hits {
            println!("{:>12}  {:.6}", h.id, h.distance);
        }
        println!("({} hits in {micros} us)", hits.len());
    }
    Ok(ExitCode::SUCCESS)
}
