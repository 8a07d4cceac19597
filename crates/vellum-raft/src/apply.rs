//! Applying one [`Request`] to a database: what every node's state machine does with a
//! committed entry, and what a single node without Raft does with a write at once.
//!
//! Applying is idempotent over a suffix (an upsert sets, a delete or drop removes, a create
//! of an equal collection is a no-op), and a request the database refuses is refused the
//! same way everywhere: the refusal is the [`Response`], not an error.

use vellum::{Database, Point};

use crate::error::Result;
use crate::types::{Refusal, Request, Response};

/// Applies `req` to `db`. `Err` is a failure of the database itself (I/O, corruption), not
/// a refusal of the request.
pub fn apply(db: &Database, req: Request) -> Result<Response> {
    match req {
        Request::CreateCollection { name, spec } => {
            let config = match spec.to_config() {
                Ok(c) => c,
                Err(reason) => return Ok(refused(Refusal::Invalid, reason)),
            };
            match db.collection(&name) {
                Ok(c) if c.config() == config => Ok(Response::Applied { points: 0 }),
                Ok(_) => Ok(refused(
                    Refusal::Conflict,
                    format!("collection {name:?} exists with another shape"),
                )),
                Err(vellum::Error::UnknownCollection { .. }) => {
                    match db.create_collection(&name, config) {
                        Ok(_) => Ok(Response::Applied { points: 0 }),
                        Err(e) => refusal(e),
                    }
                }
                Err(e) => refusal(e),
            }
        }
        Request::DropCollection { name } => match db.drop_collection(&name) {
            Ok(()) | Err(vellum::Error::UnknownCollection { .. }) => {
                Ok(Response::Applied { points: 0 })
            }
            Err(e) => refusal(e),
        },
        Request::Upsert { collection, points } => {
            let coll = match db.collection(&collection) {
                Ok(c) => c,
                Err(e) => return refusal(e),
            };
            let n = points.len() as u64;
            let points = points.into_iter().map(|p| Point {
                id: p.id,
                vector: p.vector,
                payload: p.payload,
            });
            match coll.upsert_batch(points) {
                Ok(_) => Ok(Response::Applied { points: n }),
                Err(e) => refusal(e),
            }
        }
        Request::Delete { collection, ids } => {
            let coll = match db.collection(&collection) {
                Ok(c) => c,
                Err(e) => return refusal(e),
            };
            if ids.is_empty() {
                return Ok(Response::Applied { points: 0 });
            }
            let mut batch = vellum::WriteBatch::default();
            for id in &ids {
                batch.delete(*id);
            }
            match coll.write(batch) {
                Ok(_) => Ok(Response::Applied {
                    points: ids.len() as u64,
                }),
                Err(e) => refusal(e),
            }
        }
        Request::DeleteWhere { collection, filter } => {
            let coll = match db.collection(&collection) {
                Ok(c) => c,
                Err(e) => return refusal(e),
            };
            // The filter was checked before it was proposed; a node that cannot parse it
            // refuses it as every other node does.
            let filter: vellum::Filter = match filter.parse() {
                Ok(f) => f,
                Err(e) => return Ok(refused(Refusal::Invalid, format!("filter: {e}"))),
            };
            match coll.delete_by_filter(&filter) {
                Ok(n) => Ok(Response::Applied { points: n }),
                Err(e) => refusal(e),
            }
        }
    }
}

fn refused(kind: Refusal, reason: String) -> Response {
    Response::Refused { kind, reason }
}

/// A refusal for the errors that are about the request; any other error is the database's.
fn refusal(e: vellum::Error) -> Result<Response> {
    let kind = match &e {
        vellum::Error::UnknownCollection { .. } => Refusal::NotFound,
        vellum::Error::CollectionExists { .. } => Refusal::Conflict,
        vellum::Error::InvalidName { .. }
        | vellum::Error::DimensionMismatch { .. }
        | vellum::Error::NonFinite { .. }
        | vellum::Error::InvalidArgument(_) => Refusal::Invalid,
        _ => return Err(e.into()),
    };
    Ok(refused(kind, e.to_string()))
}
