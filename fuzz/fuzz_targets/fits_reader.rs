//! Fuzzes the FITS reader with arbitrary bytes as a file: every HDU is selected, its header cards
//! read, images and binary tables decoded. Any input must give a value or an error, never a panic,
//! an abort or an allocation the file's size does not justify.

#![no_main]

use fitsread::{Fits, HduKind};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(mut f) = Fits::open_memory(data.to_vec()) else {
        return;
    };
    for i in 0..f.num_hdus().min(16) {
        let Ok(kind) = f.select(i) else { continue };
        let _ = f.hdu_label();
        let _ = f.extname();
        let _ = f.header_cards();
        let _ = f.key_i64("NAXIS2");
        match kind {
            HduKind::Image => {
                let _ = f.image_f32();
            }
            HduKind::Table => {
                let _ = f.num_rows();
                if let Ok(layout) = f.table_layout() {
                    let _ = f.read_table_rows(&layout, &[0, 1, 2]);
                }
                let _ = f.read_table();
                let _ = f.read_table_columns();
                let _ = f.int_cell("TARGET_INDEX", 0);
                let _ = f.str_cell("SPECOBJID", 0);
                let _ = f.select_named("SPALL", 2);
                let _ = f.int_column("FIBERID");
            }
        }
    }
});
