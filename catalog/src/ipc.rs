//! Record batches as bytes (the Arrow IPC stream format), to move catalog rows between ranks.

use arrow::array::RecordBatch;
use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::StreamWriter;

use crate::error::CatalogError;

/// The batch as IPC stream bytes (schema with field metadata, then the batch).
pub fn to_bytes(batch: &RecordBatch) -> Result<Vec<u8>, CatalogError> {
    let err = |e: arrow::error::ArrowError| CatalogError::Exchange(e.to_string());
    let mut buf = Vec::new();
    let mut w = StreamWriter::try_new(&mut buf, &batch.schema()).map_err(err)?;
    w.write(batch).map_err(err)?;
    w.finish().map_err(err)?;
    drop(w);
    Ok(buf)
}

/// The batch [`to_bytes`] encoded.
pub fn from_bytes(bytes: &[u8]) -> Result<RecordBatch, CatalogError> {
    let err = |e: arrow::error::ArrowError| CatalogError::Exchange(e.to_string());
    let mut r = StreamReader::try_new(bytes, None).map_err(err)?;
    r.next()
        .ok_or_else(|| CatalogError::Exchange("no batch in the bytes".into()))?
        .map_err(err)
}
