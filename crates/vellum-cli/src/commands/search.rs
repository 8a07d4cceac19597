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

/// Where the queries come from: `--query` or `--query-file`.
pub(crate) enum Queries {
    One(String),
    File(PathBuf),
}

impl Queries {
    pub(crate) fn from_args(
        query: Option<String>,
        file: Option<PathBuf>,
    ) -> Result<Queries, BoxError> {
        match (query, file) {
            (Some(q), None) => Ok(Queries::One(q)),
            (None, Some(f)) => Ok(Queries::File(f)),
            _ => Err("give --query or --query-file (one of them)".into()),
        }
    }

    /// The query vectors.
    fn read(&self) -> Result<Vec<Vec<f32>>, BoxError> {
        let parse = |line: &str, at: &str| -> Result<Vec<f32>, BoxError> {
            line.split(',')
                .map(|s| {
                    s.trim()
                        .parse::<f32>()
                        .map_err(|e| format!("{at}query component {s:?}: {e}").into())
                })
                .collect()
        };
        match self {
            Queries::One(q) => Ok(vec![parse(q, "")?]),
            Queries::File(path) if path.as_os_str() == "-" => {
                let mut out = Vec::new();
                for (i, line) in std::io::stdin().lines().enumerate() {
                    let line = line.map_err(|e| {
                        format!(
                            "standard input line {}: {e} (standard input takes one \
                             comma-separated vector a line; pass a .fvecs, .bvecs or .npy file \
                             by its path)",
                            i + 1
                        )
                    })?;
                    if !line.trim().is_empty() {
                        out.push(parse(&line, &format!("standard input line {}: ", i + 1))?);
                    }
                }
                if out.is_empty() {
                    return Err(
                        "standard input held no query (one comma-separated vector a \
                                line)"
                            .into(),
                    );
                }
                Ok(out)
            }
            Queries::File(path) => {
                let vectors = match path.extension().and_then(|e| e.to_str()) {
                    Some("fvecs") => crate::data::read_vecs(path, 4)?,
                    Some("bvecs") => crate::data::read_vecs(path, 1)?,
                    Some("npy") => crate::data::read_npy(path)?,
                    _ => {
                        return Err(format!(
                            "cannot tell the format of {} from its extension (.fvecs, .bvecs, \
                             .npy, or - for standard input)",
                            path.display()
                        )
                        .into());
                    }
                };
                Ok((0..vectors.rows())
                    .map(|i| vectors.row(i).to_vec())
                    .collect())
            }
        }
    }
}

/// `vellum search`: parses the queries (and the filter) and prints each one's hits with the
/// time taken.
pub(crate) fn search(
    db: PathBuf,
    collection: String,
    queries: Queries,
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
    let many = matches!(queries, Queries::File(_));
    let queries = queries.read()?;
    let database = open_for_reading(&db)?;
    let c = database.collection(&collection)?;
    let params = SearchParams {
        ef,
        exact,
        filter: filter.as_ref().map(SearchFilter::Where),
        with_payload,
        with_vector: false,
    };
    let mut results = Vec::with_capacity(queries.len());
    for (i, q) in queries.iter().enumerate() {
        let started = Instant::now();
        let hits = c.search_with(q, k, &params).map_err(|e| {
            if many {
                format!("query {i}: {e}").into()
            } else {
                BoxError::from(e)
            }
        })?;
        results.push((hits, started.elapsed().as_micros()));
    }
    if json {
        let sets: Vec<_> = results
            .iter()
            .map(|(hits, micros)| {
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
                json!({"hits": rows, "micros": micros})
            })
            .collect();
        if many {
            println!("{}", json!({ "results": sets }));
        } else {
            println!("{}", sets[0]);
        }
    } else {
        for (i, (hits, micros)) in results.iter().enumerate() {
            if many {
                println!("query {i}:");
            }
            for h in hits {
                match (with_payload, &h.payload) {
                    (true, Some(p)) => println!(
                        "{:>12}  {:.6}  {}",
                        h.id,
                        h.distance,
                        String::from_utf8_lossy(p)
                    ),
                    (true, None) => println!("{:>12}  {:.6}  (no payload)", h.id, h.distance),
                    (false, _) => println!("{:>12}  {:.6}", h.id, h.distance),
                }
            }
            println!("({} hits in {micros} us)", hits.len());
        }
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
