//! SQL over the catalog with Apache DataFusion. The catalog is the table `catalog`, a view whose
//! column names are the catalog's in lower case: DataFusion lower-cases unquoted identifiers, so
//! `Z`, `z` and `PLUG_RA` all name their column, as in DuckDB or SkyServer. Results get the catalog's
//! own spelling back (`PLUG_RA`, `z`). Two sky functions are registered: `in_cone(ra, dec, ra0,
//! dec0, radius)` and `sky_distance(ra1, dec1, ra2, dec2)`, in degrees.
//!
//! The catalog file is read by DataFusion itself (only the columns a query names, row groups pruned
//! by their statistics, filter columns decoded first); a catalog repaired in memory is a table of
//! record batches.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use arrow::array::{Array, AsArray, BooleanArray, Float64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Float64Type, Schema, SchemaRef};
use datafusion::common::{Column, DataFusionError, ScalarValue, SchemaError};
use datafusion::datasource::MemTable;
use datafusion::execution::context::SQLOptions;
use datafusion::logical_expr::{
    ColumnarValue, Expr, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::prelude::{col, lit, DataFrame, ParquetReadOptions, SessionConfig, SessionContext};

use crate::columns::KEY;
use crate::error::CatalogError;
use crate::file::Catalog;
use crate::sky::{angular_distance, Cone};

/// The name of the catalog table in SQL.
pub const TABLE: &str = "catalog";
/// The table the view reads (the file or the batches).
const SOURCE: &str = "catalog_source";

/// A SQL session over one catalog.
pub struct Engine {
    runtime: tokio::runtime::Runtime,
    ctx: SessionContext,
    /// Lower-case name → the catalog's spelling.
    spelling: HashMap<String, String>,
}

impl Engine {
    /// Over a catalog file (read lazily by DataFusion).
    pub fn over_file(path: &Path) -> Result<Self, CatalogError> {
        let engine = Self::new()?;
        let path = path.to_string_lossy().into_owned();
        engine.block_on(async {
            engine
                .ctx
                .register_parquet(SOURCE, &path, ParquetReadOptions::default())
                .await
        })?;
        engine.with_view()
    }

    /// Over catalog rows in memory.
    pub fn over_catalog(catalog: &Catalog) -> Result<Self, CatalogError> {
        Self::over_batches(catalog.schema().clone(), catalog.batches().to_vec())
    }

    /// Over any batches of one schema (some columns of a catalog, say).
    pub fn over_batches(
        schema: SchemaRef,
        batches: Vec<RecordBatch>,
    ) -> Result<Self, CatalogError> {
        let engine = Self::new()?;
        let table = MemTable::try_new(schema, vec![batches]).map_err(sql_error)?;
        engine
            .ctx
            .register_table(SOURCE, Arc::new(table))
            .map_err(sql_error)?;
        engine.with_view()
    }

    fn new() -> Result<Self, CatalogError> {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .build()
            .map_err(|e| CatalogError::Sql(format!("cannot start the SQL engine: {e}")))?;
        let mut config = SessionConfig::new().with_target_partitions(threads);
        let parquet = &mut config.options_mut().execution.parquet;
        parquet.pushdown_filters = true;
        parquet.reorder_filters = true;
        // Plain Utf8 strings, as catalog.parquet holds them (pandas and the exports expect them).
        parquet.schema_force_view_types = false;
        config.options_mut().sql_parser.map_string_types_to_utf8view = false;
        let ctx = SessionContext::new_with_config(config);
        ctx.register_udf(ScalarUDF::from(InCone::new()));
        ctx.register_udf(ScalarUDF::from(SkyDistance::new()));
        Ok(Self {
            runtime,
            ctx,
            spelling: HashMap::new(),
        })
    }

    fn block_on<T>(
        &self,
        f: impl std::future::Future<Output = datafusion::error::Result<T>>,
    ) -> Result<T, CatalogError> {
        self.runtime.block_on(f).map_err(sql_error)
    }

    /// Registers `catalog`: every column of the source under its lower-case name.
    fn with_view(mut self) -> Result<Self, CatalogError> {
        let source = self.block_on(self.ctx.table(SOURCE))?;
        let mut exprs = Vec::new();
        for f in source.schema().fields() {
            let lower = f.name().to_ascii_lowercase();
            exprs.push(Expr::Column(Column::new_unqualified(f.name())).alias(&lower));
            self.spelling.insert(lower, f.name().clone());
        }
        let view = source.select(exprs).map_err(sql_error)?.into_view();
        self.ctx.register_table(TABLE, view).map_err(sql_error)?;
        Ok(self)
    }

    /// The type of a catalog column (any case), None if there is no such column.
    pub fn column_type(&self, name: &str) -> Option<DataType> {
        let df = self.catalog().ok()?;
        let f = df
            .schema()
            .field_with_unqualified_name(&name.to_ascii_lowercase())
            .ok()?;
        Some(f.data_type().clone())
    }

    /// The catalog's columns, in its spelling.
    pub fn column_names(&self) -> Vec<String> {
        let Ok(df) = self.catalog() else {
            return Vec::new();
        };
        df.schema()
            .fields()
            .iter()
            .map(|f| self.spelling.get(f.name()).unwrap_or(f.name()).clone())
            .collect()
    }

    fn catalog(&self) -> Result<DataFrame, CatalogError> {
        self.block_on(self.ctx.table(TABLE))
    }

    /// Rows that pass every SQL boolean expression of `filters` (each parsed on its own, as one
    /// expression and nothing more, then combined with AND as expression trees) and every
    /// expression of `exprs` (see [`one_of`]): the `columns` named (all when None), sorted by key,
    /// in the catalog's spelling.
    pub fn select(
        &self,
        filters: &[String],
        exprs: Vec<Expr>,
        columns: Option<&[&str]>,
    ) -> Result<RecordBatch, CatalogError> {
        let mut df = self.catalog()?;
        for e in exprs {
            df = df.filter(e).map_err(sql_error)?;
        }
        for filter in filters {
            check_size(filter).map_err(|why| where_error(filter, &why))?;
            let expr = df
                .parse_sql_expr(filter)
                .map_err(|e| where_error(filter, &message(&e)))?;
            df = df
                .filter(expr)
                .map_err(|e| where_error(filter, &message(&e)))?;
        }
        if let Some(columns) = columns {
            let lower: Vec<String> = columns.iter().map(|c| c.to_ascii_lowercase()).collect();
            let names: Vec<&str> = lower.iter().map(String::as_str).collect();
            df = df.select_columns(&names).map_err(sql_error)?;
        }
        df = df
            .sort(vec![col(KEY).sort(true, false)])
            .map_err(sql_error)?;
        let schema: Arc<Schema> = Arc::new(df.schema().as_arrow().clone());
        let batches = self
            .runtime
            .block_on(df.collect())
            .map_err(|e| match filters {
                [one] => where_error(one, &message(&e)),
                _ => sql_error(e),
            })?;
        self.respelled(&schema, &batches)
    }

    /// Runs a whole query (read-only: no DDL, no writes) and returns its rows, columns of the
    /// catalog in the catalog's spelling.
    pub fn query(&self, sql: &str) -> Result<RecordBatch, CatalogError> {
        check_size(sql)
            .map_err(|why| CatalogError::Sql(format!("--sql {}: {why}", excerpt(sql))))?;
        let options = SQLOptions::new()
            .with_allow_ddl(false)
            .with_allow_dml(false)
            .with_allow_statements(false);
        let df = self
            .runtime
            .block_on(self.ctx.sql_with_options(sql, options))
            .map_err(|e| query_error(sql, e))?;
        let schema: Arc<Schema> = Arc::new(df.schema().as_arrow().clone());
        let batches = self
            .runtime
            .block_on(df.collect())
            .map_err(|e| query_error(sql, e))?;
        self.respelled(&schema, &batches)
    }

    /// The batches as one, with catalog columns spelled as in the catalog.
    fn respelled(
        &self,
        schema: &SchemaRef,
        batches: &[RecordBatch],
    ) -> Result<RecordBatch, CatalogError> {
        let fields: Vec<Field> = schema
            .fields()
            .iter()
            .map(|f| {
                let name = self.spelling.get(f.name()).unwrap_or(f.name());
                f.as_ref().clone().with_name(name)
            })
            .collect();
        let out = Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()));
        let one = arrow::compute::concat_batches(schema, batches)
            .map_err(|e| CatalogError::Sql(e.to_string()))?;
        RecordBatch::try_new(out, one.columns().to_vec())
            .map_err(|e| CatalogError::Sql(e.to_string()))
    }
}

/// The expression "column has one of these values" (any case for the column name).
pub fn one_of(column: &str, values: Vec<ScalarValue>) -> Expr {
    let list = values.into_iter().map(lit).collect();
    col(column.to_ascii_lowercase()).in_list(list, false)
}

/// The expression "key is one of these".
pub fn key_in(keys: &[i64]) -> Expr {
    int64_in(KEY, keys)
}

/// The expression "this Int64 column is one of these".
pub fn int64_in(column: &str, values: &[i64]) -> Expr {
    one_of(
        column,
        values
            .iter()
            .map(|&k| ScalarValue::Int64(Some(k)))
            .collect(),
    )
}

fn sql_error(e: DataFusionError) -> CatalogError {
    CatalogError::Sql(message(&e))
}

/// DataFusion's message, without its wrapping, and with unknown columns said shortly (its own
/// message lists every column of the catalog).
fn message(e: &DataFusionError) -> String {
    match e.find_root() {
        DataFusionError::SchemaError(s, _) => match s.as_ref() {
            SchemaError::FieldNotFound { field, .. } => format!(
                "no column named {} in the catalog (list them with --sql \"DESCRIBE catalog\")",
                field.name
            ),
            other => other.to_string(),
        },
        root => root.strip_backtrace(),
    }
}

fn where_error(filter: &str, why: &str) -> CatalogError {
    CatalogError::Sql(format!("--where {}: {why}", excerpt(filter)))
}

fn query_error(sql: &str, e: DataFusionError) -> CatalogError {
    CatalogError::Sql(format!("--sql {}: {}", excerpt(sql), message(&e)))
}

/// The most operators one expression or query may have. DataFusion parses a chain such as
/// `a OR b OR …` or `1+1+…` without recursion but plans and evaluates it recursively: a chain of a
/// few thousand terms overflows the stack. A hand-written query stays far below this.
pub const MAX_OPERATORS: usize = 1000;
/// The deepest nesting of parentheses allowed.
pub const MAX_NESTING: usize = 100;

/// Refuses SQL text whose expression trees would be too deep to plan safely (see
/// [`MAX_OPERATORS`]); the text is tokenized, never parsed, so the check itself cannot overflow.
pub fn check_size(sql: &str) -> Result<(), String> {
    use datafusion::sql::sqlparser::dialect::GenericDialect;
    use datafusion::sql::sqlparser::keywords::Keyword;
    use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};
    let tokens = Tokenizer::new(&GenericDialect {}, sql)
        .tokenize()
        .map_err(|e| e.to_string())?;
    let (mut operators, mut depth, mut deepest) = (0usize, 0usize, 0usize);
    for t in &tokens {
        match t {
            Token::LParen => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            Token::RParen => depth = depth.saturating_sub(1),
            Token::Word(w) if matches!(w.keyword, Keyword::AND | Keyword::OR | Keyword::NOT) => {
                operators += 1
            }
            Token::Plus
            | Token::Minus
            | Token::Mul
            | Token::Div
            | Token::Mod
            | Token::Eq
            | Token::DoubleEq
            | Token::Neq
            | Token::Lt
            | Token::Gt
            | Token::LtEq
            | Token::GtEq
            | Token::Ampersand
            | Token::Pipe
            | Token::Caret
            | Token::ShiftLeft
            | Token::ShiftRight
            | Token::StringConcat => operators += 1,
            _ => {}
        }
    }
    if operators > MAX_OPERATORS {
        return Err(format!(
            "too long: {operators} operators (at most {MAX_OPERATORS}); for long lists of values \
             use IN (...), --fibers or --ids"
        ));
    }
    if deepest > MAX_NESTING {
        return Err(format!(
            "parentheses nested {deepest} deep (at most {MAX_NESTING})"
        ));
    }
    Ok(())
}

/// User text quoted in a message: at most a short prefix, control characters escaped.
fn excerpt(text: &str) -> String {
    model::message::excerpt(text)
}

/// The SQL function `in_cone(ra, dec, ra0, dec0, radius)`: true when (ra, dec) is within `radius`
/// of (ra0, dec0), all in degrees, boundary included; the same test as `--cone`.
#[derive(Debug, PartialEq, Eq, Hash)]
struct InCone {
    signature: Signature,
}

impl InCone {
    fn new() -> Self {
        Self {
            signature: Signature::uniform(5, vec![DataType::Float64], Volatility::Immutable),
        }
    }
}

/// The value of a constant argument.
fn constant(v: &ColumnarValue) -> Option<Option<f64>> {
    match v {
        ColumnarValue::Scalar(ScalarValue::Float64(x)) => Some(*x),
        _ => None,
    }
}

impl ScalarUDFImpl for InCone {
    fn name(&self) -> &str {
        "in_cone"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> datafusion::error::Result<DataType> {
        Ok(DataType::Boolean)
    }

    fn invoke_with_args(
        &self,
        args: ScalarFunctionArgs,
    ) -> datafusion::error::Result<ColumnarValue> {
        let n = args.number_rows;
        let centre: Option<Vec<Option<f64>>> = args.args[2..].iter().map(constant).collect();
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let ra = arrays[0].as_primitive::<Float64Type>();
        let dec = arrays[1].as_primitive::<Float64Type>();
        let cone = |i: usize| -> datafusion::error::Result<Option<Cone>> {
            let v = |k: usize| {
                let a = arrays[k].as_primitive::<Float64Type>();
                a.is_valid(i).then(|| a.value(i))
            };
            match (v(2), v(3), v(4)) {
                (Some(r), Some(d), Some(rad)) => Cone::new(r, d, rad)
                    .map(Some)
                    .map_err(|e| DataFusionError::Execution(format!("in_cone: {e}"))),
                _ => Ok(None),
            }
        };
        let out: BooleanArray = match centre {
            // The usual case: one cone for every row, its constants computed once.
            Some(c) => {
                let cone = match (c[0], c[1], c[2]) {
                    (Some(r), Some(d), Some(rad)) => Some(
                        Cone::new(r, d, rad)
                            .map_err(|e| DataFusionError::Execution(format!("in_cone: {e}")))?
                            .matcher(),
                    ),
                    _ => None,
                };
                (0..n)
                    .map(|i| {
                        let m = cone.as_ref()?;
                        (ra.is_valid(i) && dec.is_valid(i))
                            .then(|| m.contains(ra.value(i), dec.value(i)))
                    })
                    .collect()
            }
            None => (0..n)
                .map(|i| {
                    Ok(cone(i)?.and_then(|c| {
                        (ra.is_valid(i) && dec.is_valid(i))
                            .then(|| c.contains(ra.value(i), dec.value(i)))
                    }))
                })
                .collect::<datafusion::error::Result<BooleanArray>>()?,
        };
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}

/// The SQL function `sky_distance(ra1, dec1, ra2, dec2)`: the great-circle distance in degrees.
#[derive(Debug, PartialEq, Eq, Hash)]
struct SkyDistance {
    signature: Signature,
}

impl SkyDistance {
    fn new() -> Self {
        Self {
            signature: Signature::uniform(4, vec![DataType::Float64], Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for SkyDistance {
    fn name(&self) -> &str {
        "sky_distance"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> datafusion::error::Result<DataType> {
        Ok(DataType::Float64)
    }

    fn invoke_with_args(
        &self,
        args: ScalarFunctionArgs,
    ) -> datafusion::error::Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let a: Vec<&Float64Array> = arrays
            .iter()
            .map(|a| a.as_primitive::<Float64Type>())
            .collect();
        let out: Float64Array = (0..args.number_rows)
            .map(|i| {
                a.iter().all(|x| x.is_valid(i)).then(|| {
                    angular_distance(a[0].value(i), a[1].value(i), a[2].value(i), a[3].value(i))
                })
            })
            .collect();
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}
