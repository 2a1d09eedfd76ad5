//! `stackquake report DIR`: re-render report.html from the journal.json a
//! run left in DIR (an older run, or one copied from CI).

use super::exit;
use crate::report::RunReport;
use std::path::Path;

pub fn report(dir: &Path) -> u8 {
    let report = match RunReport::read(dir) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::INVALID_INPUT;
        }
    };
    match report.write_html(dir) {
        Ok(path) => {
            println!("{}", path.display());
            exit::OK
        }
        Err(e) => {
            eprintln!("error: {e}");
            exit::INTERNAL
        }
    }
}
