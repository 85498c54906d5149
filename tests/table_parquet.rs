//! `Table::to_parquet` read back by pyarrow, the reference reader: names,
//! types, row counts and every value (nulls, NaN, infinities, extreme
//! integers, non-ASCII text) come back as written.
mod common;

use ptycho_workbench::table::{Column, Table, Values};
use serde_json::Value;

/// The table written to a temporary file and read by `read_parquet.py`.
fn read_back(table: &Table) -> Value {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("table.parquet");
    std::fs::write(&path, table.to_parquet()).expect("file written");
    common::run_python_json(&common::fixture("table/read_parquet.py"), &[&path])
}

/// pyarrow's name for the column type each kind of values is written as.
fn arrow_type(values: &Values) -> &'static str {
    match values {
        Values::Float(_) => "double",
        Values::Int(_) => "int64",
        Values::Text(_) => "string",
        Values::Bool(_) => "bool",
    }
}

/// Whether pyarrow's row `i` (as the script prints it) is the value written.
fn same(values: &Values, i: usize, read: &Value) -> bool {
    match values {
        Values::Float(v) => match (v[i], read) {
            (None, Value::Null) => true,
            (Some(x), Value::String(s)) => match s.as_str() {
                "NaN" => x.is_nan(),
                "inf" => x == f64::INFINITY,
                "-inf" => x == f64::NEG_INFINITY,
                _ => false,
            },
            // bit for bit: -0.0 and subnormals included
            (Some(x), Value::Number(n)) => n.as_f64().is_some_and(|r| r.to_bits() == x.to_bits()),
            _ => false,
        },
        Values::Int(v) => match (v[i], read) {
            (None, Value::Null) => true,
            (Some(x), Value::Number(n)) => n.as_i64() == Some(x),
            _ => false,
        },
        Values::Text(v) => match (&v[i], read) {
            (None, Value::Null) => true,
            (Some(x), Value::String(s)) => x == s,
            _ => false,
        },
        Values::Bool(v) => match (v[i], read) {
            (None, Value::Null) => true,
            (Some(x), Value::Bool(b)) => x == *b,
            _ => false,
        },
    }
}

/// Asserts pyarrow reads back exactly `table`; returns what it read.
fn assert_reads_back(table: &Table) -> Value {
    let got = read_back(table);
    assert_eq!(got["num_rows"], table.height() as u64, "row count");
    let columns = got["columns"].as_array().expect("columns");
    assert_eq!(columns.len(), table.width(), "column count");
    for (c, read) in table.columns().iter().zip(columns) {
        let name = c.name();
        assert_eq!(read["name"], name);
        assert_eq!(read["type"], arrow_type(c.values()), "type of `{name}`");
        assert_eq!(read["nullable"], true, "`{name}` nullable");
        let values = read["values"].as_array().expect("values");
        assert_eq!(values.len(), c.len(), "length of `{name}`");
        for (i, v) in values.iter().enumerate() {
            assert!(
                same(c.values(), i, v),
                "`{name}` row {i}: pyarrow read {v}, we wrote {}",
                c.csv_field(i)
            );
        }
        let nulls = (0..c.len()).filter(|&i| c.values().is_null(i)).count();
        if table.height() > 0 {
            assert_eq!(read["null_count"], nulls as u64, "null count of `{name}`");
        }
    }
    got
}

#[test]
fn every_kind_of_value_reads_back() {
    let subnormal = f64::from_bits(1); // 5e-324
    let t = Table::new(vec![
        Column::new(
            "x",
            vec![
                Some(1.5),
                None,
                Some(f64::NAN),
                Some(f64::INFINITY),
                Some(f64::NEG_INFINITY),
                Some(-0.0),
                Some(subnormal),
                Some(f64::MIN_POSITIVE / 3.0),
                Some(f64::MAX),
                Some(0.1),
            ],
        ),
        Column::new(
            "n",
            vec![
                Some(i64::MIN),
                Some(i64::MAX),
                None,
                Some(0),
                Some(-1),
                Some(1),
                Some(300),
                None,
                Some(-300),
                Some(42),
            ],
        ),
        Column::new(
            "s",
            vec![
                Some("µm ±".to_string()),
                Some(String::new()),
                None,
                Some("a,b \"quoted\"\nline".to_string()),
                Some("日本語 ✓ 🦀".to_string()),
                None,
                Some("x".to_string()),
                Some(String::new()),
                Some("tab\there".to_string()),
                Some("\u{0}nul".to_string()),
            ],
        ),
        Column::new(
            "ok",
            vec![
                Some(true),
                None,
                Some(false),
                Some(true),
                Some(true),
                None,
                Some(false),
                Some(false),
                Some(true),
                None,
            ],
        ),
    ])
    .unwrap();
    let got = assert_reads_back(&t);
    // The same, spelled out for a few values.
    let cols = &got["columns"];
    assert_eq!(got["num_rows"], 10);
    assert_eq!(cols[0]["values"][0], 1.5);
    assert_eq!(cols[0]["values"][1], Value::Null);
    assert_eq!(cols[0]["values"][2], "NaN");
    assert_eq!(cols[0]["values"][3], "inf");
    assert_eq!(cols[0]["values"][4], "-inf");
    assert_eq!(cols[1]["values"][0], i64::MIN);
    assert_eq!(cols[1]["values"][1], i64::MAX);
    assert_eq!(cols[2]["values"][0], "µm ±");
    assert_eq!(cols[2]["values"][1], "");
    assert_eq!(cols[3]["values"][1], Value::Null);
    assert_eq!(cols[3]["values"][2], false);
}

#[test]
fn columns_of_nulls_only_read_back() {
    let t = Table::new(vec![
        Column::new("x", vec![None::<f64>; 5]),
        Column::new("n", vec![None::<i64>; 5]),
        Column::new("s", vec![None::<String>; 5]),
        Column::new("ok", vec![None::<bool>; 5]),
        Column::new("y", vec![1.0, 2.0, 3.0, 4.0, 5.0]),
    ])
    .unwrap();
    let got = assert_reads_back(&t);
    assert_eq!(got["columns"][2]["null_count"], 5);
    assert_eq!(got["columns"][4]["null_count"], 0);
}

#[test]
fn more_than_fifteen_columns_read_back_in_order() {
    // 40 columns: the schema (41 elements) and column-chunk lists take the
    // long list header.
    let columns: Vec<Column> = (0..40)
        .map(|k| match k % 4 {
            0 => Column::new(&format!("f{k}"), vec![Some(k as f64), None, Some(-(k as f64) / 7.0)]),
            1 => Column::new(&format!("i{k}"), vec![None, Some(k as i64), Some(-(k as i64))]),
            2 => Column::new(&format!("s{k} µ"), vec![format!("{k}"), String::new(), "z".repeat(k)]),
            _ => Column::new(&format!("b{k}"), vec![Some(k % 3 == 0), Some(true), None]),
        })
        .collect();
    let t = Table::new(columns).unwrap();
    let got = assert_reads_back(&t);
    assert_eq!(got["columns"][39]["name"], "b39");
}

#[test]
fn long_text_and_long_names_read_back() {
    // A name over 127 bytes (two-byte Thrift length) and a 100 kB value.
    let long_name = "column_".repeat(30);
    let long_value: String = (0..20_000).map(|i| ["µm", "±", "abc", "✓"][i % 4]).collect();
    let t = Table::new(vec![
        Column::new(
            &long_name,
            vec![Some(long_value.clone()), None, Some("short".to_string())],
        ),
        Column::new("n", vec![1i64, 2, 3]),
    ])
    .unwrap();
    let got = assert_reads_back(&t);
    assert_eq!(got["columns"][0]["values"][0].as_str().unwrap().len(), long_value.len());
}

#[test]
fn thousands_of_rows_with_mixed_null_runs_read_back() {
    // Null patterns that give the definition levels bit-packed runs of many
    // groups, RLE runs of both levels, and a short run at the end.
    let rows = 3001;
    let pattern = |i: usize| match i {
        0..=999 => !i.is_multiple_of(3),    // scattered nulls: bit-packed
        1000..=1499 => true,                // a long defined run: RLE
        1500..=1999 => false,               // a long null run: RLE
        2000..=2996 => i.is_multiple_of(2), // alternating: bit-packed
        _ => i % 5 != 1,                    // the tail
    };
    let floats: Vec<Option<f64>> = (0..rows)
        .map(|i| pattern(i).then_some(i as f64 * 0.37 - 100.0))
        .collect();
    let ints: Vec<Option<i64>> = (0..rows)
        .map(|i| pattern(i + 1).then(|| (i as i64 - 1500) * 1_000_003))
        .collect();
    let texts: Vec<Option<String>> = (0..rows)
        .map(|i| pattern(i + 2).then(|| format!("row {i} µ")))
        .collect();
    let bools: Vec<Option<bool>> = (0..rows).map(|i| pattern(i + 3).then_some(i % 7 < 3)).collect();
    let dense: Vec<bool> = (0..rows).map(|i| i % 3 == 1).collect();
    let t = Table::new(vec![
        Column::new("x", floats),
        Column::new("n", ints),
        Column::new("s", texts),
        Column::new("ok", bools),
        Column::new("dense", dense),
        Column::new("count", (0..rows).collect::<Vec<usize>>()),
    ])
    .unwrap();
    assert_reads_back(&t);
}

#[test]
fn empty_tables_read_back() {
    let no_rows = Table::new(vec![
        Column::new("x", Vec::<f64>::new()),
        Column::new("n", Vec::<i64>::new()),
        Column::new("s", Vec::<String>::new()),
        Column::new("ok", Vec::<bool>::new()),
    ])
    .unwrap();
    let got = assert_reads_back(&no_rows);
    assert_eq!(got["num_rows"], 0);
    assert_eq!(got["columns"].as_array().unwrap().len(), 4);

    let no_columns = Table::new(vec![]).unwrap();
    let got = assert_reads_back(&no_columns);
    assert_eq!(got["num_rows"], 0);
    assert_eq!(got["columns"].as_array().unwrap().len(), 0);
}

#[test]
fn equal_tables_give_identical_bytes() {
    let make = || {
        Table::new(vec![
            Column::new("x", vec![Some(0.5), None, Some(f64::NAN)]),
            Column::new("s", vec!["a", "µ", ""]),
            Column::new("ok", vec![true, false, true]),
        ])
        .unwrap()
    };
    let (a, b) = (make(), make());
    assert_eq!(a.to_parquet(), b.to_parquet());
    assert_eq!(a.to_parquet(), a.clone().to_parquet());
}
