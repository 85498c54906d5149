//! Small named-column tables: what the metrics, histories and study reports
//! return, written as CSV ([`Table::to_csv`]) and Parquet
//! ([`Table::to_parquet`]), shown as HTML in a notebook.
//!
//! A column holds floats, integers, text or booleans, each value optional
//! (a missing value is empty in CSV, null in Parquet, blank in HTML). Tables
//! are built whole from their columns and only read afterwards; there is no
//! query language: select columns by name, read a column's values.
//! No IO here: the callers write the bytes (atomically).
mod parquet;

use std::fmt;

use crate::error::{Error, Result};

/// One column's values.
#[derive(Debug, Clone, PartialEq)]
pub enum Values {
    Float(Vec<Option<f64>>),
    Int(Vec<Option<i64>>),
    Text(Vec<Option<String>>),
    Bool(Vec<Option<bool>>),
}

impl Values {
    pub fn len(&self) -> usize {
        match self {
            Values::Float(v) => v.len(),
            Values::Int(v) => v.len(),
            Values::Text(v) => v.len(),
            Values::Bool(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether row `i` holds no value.
    pub fn is_null(&self, i: usize) -> bool {
        match self {
            Values::Float(v) => v[i].is_none(),
            Values::Int(v) => v[i].is_none(),
            Values::Text(v) => v[i].is_none(),
            Values::Bool(v) => v[i].is_none(),
        }
    }
}

macro_rules! values_from {
    ($variant:ident, $t:ty, $map:expr) => {
        impl From<Vec<$t>> for Values {
            fn from(v: Vec<$t>) -> Values {
                Values::$variant(v.into_iter().map($map).collect())
            }
        }
    };
}

values_from!(Float, f64, Some);
values_from!(Float, Option<f64>, |x| x);
values_from!(Float, f32, |x| Some(f64::from(x)));
values_from!(Int, i64, Some);
values_from!(Int, Option<i64>, |x| x);
values_from!(Int, u32, |x| Some(i64::from(x)));
values_from!(Int, usize, |x| Some(x as i64));
values_from!(Int, Option<usize>, |x: Option<usize>| x.map(|v| v as i64));
// beyond i64::MAX (never for counts and sizes) a value is missing, not wrapped
values_from!(Int, u64, |x| i64::try_from(x).ok());
values_from!(Int, Option<u64>, |x: Option<u64>| x.and_then(|v| i64::try_from(v).ok()));
values_from!(Text, String, Some);
values_from!(Text, Option<String>, |x| x);
values_from!(Text, &str, |x: &str| Some(x.to_string()));
values_from!(Bool, bool, Some);
values_from!(Bool, Option<bool>, |x| x);

/// A named column.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    name: String,
    values: Values,
}

impl Column {
    pub fn new(name: &str, values: impl Into<Values>) -> Column {
        Column {
            name: name.to_string(),
            values: values.into(),
        }
    }

    /// A column of `value(row)` for each of `rows`.
    pub fn from_rows<R, V>(name: &str, rows: &[R], value: impl Fn(&R) -> V) -> Column
    where
        Vec<V>: Into<Values>,
    {
        Column::new(name, rows.iter().map(value).collect::<Vec<V>>())
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn values(&self) -> &Values {
        &self.values
    }

    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Row `i` as a float: floats as they are, integers converted, `None`
    /// for a missing value, text or booleans.
    pub fn f64(&self, i: usize) -> Option<f64> {
        match &self.values {
            Values::Float(v) => v[i],
            Values::Int(v) => v[i].map(|x| x as f64),
            _ => None,
        }
    }

    /// Row `i` as text, `None` for a missing value or another kind.
    pub fn str(&self, i: usize) -> Option<&str> {
        match &self.values {
            Values::Text(v) => v[i].as_deref(),
            _ => None,
        }
    }

    /// Row `i` as a CSV field (unquoted): floats in Rust's shortest
    /// round-trip form (`0.1`, `1e-7`, `inf`, `NaN`), empty when missing.
    pub fn csv_field(&self, i: usize) -> String {
        match &self.values {
            Values::Float(v) => v[i].map(float_text).unwrap_or_default(),
            Values::Int(v) => v[i].map(|x| x.to_string()).unwrap_or_default(),
            Values::Text(v) => v[i].clone().unwrap_or_default(),
            Values::Bool(v) => v[i].map(|x| x.to_string()).unwrap_or_default(),
        }
    }
}

/// A float as the shortest text that reads back to the same value.
fn float_text(x: f64) -> String {
    // `{:?}`: 0.1, 2.0, 1e-7, inf, NaN (Display would write 0.0000001 and 2)
    format!("{x:?}")
}

/// Columns of equal length with distinct names.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    height: usize,
    columns: Vec<Column>,
}

impl Table {
    /// Refuses columns of unequal length and repeated names.
    pub fn new(columns: Vec<Column>) -> Result<Table> {
        let height = columns.first().map_or(0, Column::len);
        for (k, c) in columns.iter().enumerate() {
            if c.len() != height {
                return Err(Error::value(
                    format!("table column `{}`", c.name),
                    format!("{} rows where `{}` has {height}", c.len(), columns[0].name),
                ));
            }
            if columns[..k].iter().any(|o| o.name == c.name) {
                return Err(Error::value(format!("table column `{}`", c.name), "named twice"));
            }
        }
        Ok(Table { height, columns })
    }

    pub fn height(&self) -> usize {
        self.height
    }

    pub fn width(&self) -> usize {
        self.columns.len()
    }

    pub fn columns(&self) -> &[Column] {
        &self.columns
    }

    pub fn column_names(&self) -> Vec<&str> {
        self.columns.iter().map(Column::name).collect()
    }

    /// The column called `name`.
    pub fn column(&self, name: &str) -> Result<&Column> {
        self.columns.iter().find(|c| c.name == name).ok_or_else(|| {
            Error::value(
                format!("table column `{name}`"),
                format!("no such column (columns: {})", self.column_names().join(", ")),
            )
        })
    }

    /// A table of the named columns, in the order given.
    pub fn select<S: AsRef<str>>(&self, names: impl IntoIterator<Item = S>) -> Result<Table> {
        let columns = names
            .into_iter()
            .map(|n| self.column(n.as_ref()).cloned())
            .collect::<Result<Vec<_>>>()?;
        Table::new(columns)
    }

    /// The table with `column` added at the right (refused when its length
    /// differs or its name is taken).
    pub fn with_column(self, column: Column) -> Result<Table> {
        let mut columns = self.columns;
        columns.push(column);
        Table::new(columns)
    }

    /// RFC 4180 CSV: a header row, `\n` line ends, a field quoted when it
    /// holds a comma, a quote or a line break (quotes doubled).
    pub fn to_csv(&self) -> String {
        let mut out = String::new();
        let line = |fields: Vec<String>, out: &mut String| {
            let quoted: Vec<String> = fields.iter().map(|f| csv_quote(f)).collect();
            out.push_str(&quoted.join(","));
            out.push('\n');
        };
        line(self.columns.iter().map(|c| c.name.clone()).collect(), &mut out);
        for i in 0..self.height {
            line(self.columns.iter().map(|c| c.csv_field(i)).collect(), &mut out);
        }
        out
    }

    /// The table as one Parquet file (one row group, plain encoding,
    /// uncompressed; floats DOUBLE, integers INT64, text UTF-8 BYTE_ARRAY,
    /// booleans BOOLEAN, every column optional so that missing values are
    /// nulls).
    pub fn to_parquet(&self) -> Vec<u8> {
        parquet::write(self)
    }

    /// An HTML table (the first rows, with a footer when cut).
    pub fn to_html(&self) -> String {
        crate::plot::table_html(self)
    }

    /// Shown as HTML when a notebook cell ends with a table.
    pub fn evcxr_display(&self) {
        crate::plot::display_html(&self.to_html());
    }
}

fn csv_quote(field: &str) -> String {
    if field.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_string()
    }
}

/// Aligned text, as a terminal shows it: a header, a rule, the rows.
impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cells: Vec<Vec<String>> = self
            .columns
            .iter()
            .map(|c| (0..self.height).map(|i| display_cell(c, i)).collect())
            .collect();
        let widths: Vec<usize> = self
            .columns
            .iter()
            .zip(&cells)
            .map(|(c, col)| {
                col.iter()
                    .map(|s| s.chars().count())
                    .chain([c.name.chars().count()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let header: Vec<String> = self
            .columns
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{:<w$}", c.name))
            .collect();
        writeln!(f, "{}", header.join("  ").trim_end())?;
        writeln!(
            f,
            "{}",
            widths.iter().map(|w| "-".repeat(*w)).collect::<Vec<_>>().join("  ")
        )?;
        for i in 0..self.height {
            let row: Vec<String> = cells
                .iter()
                .zip(&widths)
                .zip(&self.columns)
                .map(|((col, w), c)| match c.values {
                    Values::Text(_) => format!("{:<w$}", col[i]),
                    _ => format!("{:>w$}", col[i]),
                })
                .collect();
            writeln!(f, "{}", row.join("  ").trim_end())?;
        }
        Ok(())
    }
}

/// A cell as a person reads it: floats with six significant digits.
pub(crate) fn display_cell(c: &Column, i: usize) -> String {
    match &c.values {
        Values::Float(v) => v[i].map(crate::plot::format_float).unwrap_or_default(),
        _ => c.csv_field(i),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Table {
        Table::new(vec![
            Column::new("label", vec!["a", "b,c", "say \"hi\""]),
            Column::new("x", vec![Some(0.1), None, Some(f64::INFINITY)]),
            Column::new("n", vec![Some(3i64), Some(-4), None]),
            Column::new("ok", vec![true, false, true]),
        ])
        .unwrap()
    }

    #[test]
    fn csv_quotes_and_leaves_missing_values_empty() {
        assert_eq!(
            sample().to_csv(),
            "label,x,n,ok\na,0.1,3,true\n\"b,c\",,-4,false\n\"say \"\"hi\"\"\",inf,,true\n"
        );
    }

    #[test]
    fn floats_read_back_exactly() {
        for x in [0.1, 1e-7, 2.0, -3.5e300, 1.0 / 3.0, 5e-324] {
            let t = Table::new(vec![Column::new("x", vec![x])]).unwrap();
            let csv = t.to_csv();
            let field = csv.lines().nth(1).unwrap();
            assert_eq!(field.parse::<f64>().unwrap(), x, "{field}");
        }
    }

    #[test]
    fn unequal_columns_and_repeated_names_are_refused() {
        let e = Table::new(vec![Column::new("a", vec![1.0, 2.0]), Column::new("b", vec![1.0])]).unwrap_err();
        assert!(e.to_string().contains("`b`"), "{e}");
        let e = Table::new(vec![Column::new("a", vec![1.0]), Column::new("a", vec![2.0])]).unwrap_err();
        assert!(e.to_string().contains("named twice"), "{e}");
    }

    #[test]
    fn select_keeps_the_order_asked_and_names_a_missing_column() {
        let t = sample().select(["n", "label"]).unwrap();
        assert_eq!(t.column_names(), ["n", "label"]);
        assert_eq!(t.height(), 3);
        let e = sample().select(["nope"]).unwrap_err();
        assert!(e.to_string().contains("label, x, n, ok"), "{e}");
    }

    #[test]
    fn text_display_aligns_columns() {
        let s = sample().to_string();
        let lines: Vec<&str> = s.lines().collect();
        assert_eq!(lines.len(), 5);
        assert!(lines[0].starts_with("label"), "{s}");
        assert_eq!(sample().column("x").unwrap().f64(0), Some(0.1));
        assert_eq!(sample().column("n").unwrap().f64(1), Some(-4.0));
        assert_eq!(sample().column("label").unwrap().str(1), Some("b,c"));
    }
}
