//! The data-set layouts of `data.source` directories — IDX, CIFAR-10 binary, NumPy `.npy`
//! files — on tiny files written here: values, shapes, channel order, normalisation, the
//! detection of the layout, every malformed-input error, and one experiment run end to end
//! on a three-channel NumPy set.

mod common;

use common::{
    CIFAR_RECORD, PLANE, cifar_pixel, cifar_record, read, stderr, write_cifar_batch,
    write_cifar_dir, write_npy_raw, xbar_run,
};
use std::path::Path;
use xbar::data::{Format, Split, load_dir};
use xbar::studies::data_source::DataConfig;

fn err_text<T: std::fmt::Debug>(r: anyhow::Result<T>) -> String {
    format!("{:#}", r.expect_err("expected an error"))
}

#[test]
fn cifar_records_load_in_order_with_red_green_blue_as_channels_0_1_2() {
    let dir = tempfile::tempdir().unwrap();
    write_cifar_dir(dir.path());
    let split = load_dir(dir.path(), Format::Cifar10).unwrap();
    assert_eq!(split.train.len(), 1 + 2 + 3 + 4 + 5);
    assert_eq!(split.test.len(), 2);
    assert_eq!(split.train.shape(), [3, 32, 32]);
    assert_eq!(split.train.features(), 3 * PLANE);
    for (set, first) in [(&split.train, 0), (&split.test, 15)] {
        for n in 0..set.len() {
            let k = first + n;
            assert_eq!(set.labels[n], (k % 10) as u8);
            let image = set.image(n);
            for c in 0..3 {
                for i in [0, 1, 33, PLANE - 1] {
                    let expected = f32::from(cifar_pixel(k, c, i)) / 255.0;
                    assert_eq!(
                        image[c * PLANE + i],
                        expected,
                        "record {k} channel {c} px {i}"
                    );
                }
            }
        }
    }
    // Detected from its files.
    assert_eq!(Format::detect(dir.path()).unwrap(), Format::Cifar10);
    assert_eq!(load_dir(dir.path(), Format::Auto).unwrap(), split);
}

#[test]
fn malformed_cifar_files_are_errors_naming_the_file_and_the_layout() {
    let dir = tempfile::tempdir().unwrap();
    write_cifar_dir(dir.path());
    let batch = dir.path().join("data_batch_3.bin");
    // A truncated file: its length and the record size are named.
    let mut bytes = std::fs::read(&batch).unwrap();
    bytes.truncate(CIFAR_RECORD + 5);
    std::fs::write(&batch, &bytes).unwrap();
    let e = err_text(load_dir(dir.path(), Format::Cifar10));
    assert!(
        e.contains("data_batch_3.bin") && e.contains("3078 bytes") && e.contains("3073-byte"),
        "{e}"
    );
    // An empty file.
    std::fs::write(&batch, b"").unwrap();
    let e = err_text(load_dir(dir.path(), Format::Cifar10));
    assert!(
        e.contains("data_batch_3.bin") && e.contains(" 0 bytes"),
        "{e}"
    );
    // A missing file: the layout is named.
    std::fs::remove_file(&batch).unwrap();
    let e = err_text(load_dir(dir.path(), Format::Cifar10));
    assert!(
        e.contains("data_batch_3.bin") && e.contains("test_batch.bin"),
        "{e}"
    );
    // A label of 10 or more (CIFAR-100 has 100 classes).
    write_cifar_batch(&batch, &[cifar_record(0), (10, vec![0; CIFAR_RECORD - 1])]);
    let e = err_text(load_dir(dir.path(), Format::Cifar10));
    assert!(
        e.contains("data_batch_3.bin") && e.contains("record 1 has label 10"),
        "{e}"
    );
}

/// Write `{split}_images.npy` and `{split}_labels.npy`.
fn write_npy_split(
    dir: &Path,
    split: &str,
    (descr, shape, body): (&str, &[usize], &[u8]),
    (label_descr, labels): (&str, &[u8]),
) {
    write_npy_raw(
        &dir.join(format!("{split}_images.npy")),
        descr,
        shape,
        false,
        body,
    );
    let size = label_descr[2..].parse::<usize>().unwrap();
    write_npy_raw(
        &dir.join(format!("{split}_labels.npy")),
        label_descr,
        &[labels.len() / size],
        false,
        labels,
    );
}

/// Little-endian bytes of `values`.
fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}
fn i64_bytes(values: &[i64]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}
fn i32_bytes(values: &[i32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// A NumPy set of 2 x 2 images with 3 channels: 4 training images of `uint8` pixels
/// `(10 n + 3 c + i)` with `int64` labels, 2 test images of `float32` values with `int32`
/// labels.
fn write_npy_dir(dir: &Path) {
    let train: Vec<u8> = (0..4)
        .flat_map(|n| (0..3).flat_map(move |c| (0..4).map(move |i| (10 * n + 3 * c + i) as u8)))
        .collect();
    write_npy_split(
        dir,
        "train",
        ("|u1", &[4, 3, 2, 2], &train),
        ("<i8", &i64_bytes(&[0, 1, 2, 1])),
    );
    let test: Vec<f32> = (0..24).map(|i| i as f32 * 0.25 - 1.0).collect();
    write_npy_split(
        dir,
        "test",
        ("<f4", &[2, 3, 2, 2], &f32_bytes(&test)),
        ("<i4", &i32_bytes(&[2, 0])),
    );
}

#[test]
fn numpy_sets_load_uint8_scaled_and_float32_as_stored() {
    let dir = tempfile::tempdir().unwrap();
    write_npy_dir(dir.path());
    let split = load_dir(dir.path(), Format::Npy).unwrap();
    assert_eq!((split.train.len(), split.test.len()), (4, 2));
    assert_eq!(split.train.shape(), [3, 2, 2]);
    assert_eq!(split.train.labels, [0, 1, 2, 1]);
    assert_eq!(split.test.labels, [2, 0]);
    // Image 2, channel 1, pixel 3 (row 1, column 1) is byte 10*2 + 3*1 + 3.
    assert_eq!(split.train.image(2)[4 + 3], 26.0 / 255.0);
    let test: Vec<f32> = (0..24).map(|i| i as f32 * 0.25 - 1.0).collect();
    assert_eq!(split.test.images, test);
    assert_eq!(Format::detect(dir.path()).unwrap(), Format::Npy);

    // N x H x W images are one channel; uint8 labels.
    write_npy_split(
        dir.path(),
        "train",
        (
            "|u1",
            &[2, 3, 2],
            &[0, 51, 102, 153, 204, 255, 1, 2, 3, 4, 5, 6],
        ),
        ("|u1", &[7, 0]),
    );
    write_npy_split(
        dir.path(),
        "test",
        ("<f4", &[1, 3, 2], &f32_bytes(&[0.5; 6])),
        ("|u1", &[3]),
    );
    let split = load_dir(dir.path(), Format::Auto).unwrap();
    assert_eq!(split.train.shape(), [1, 3, 2]);
    assert_eq!(&split.train.images[..6], &[0.0, 0.2, 0.4, 0.6, 0.8, 1.0]);
    assert_eq!(split.train.labels, [7, 0]);
}

/// The error of loading `dir` after `edit` changed its files (starting from
/// [`write_npy_dir`]).
fn npy_error(edit: impl FnOnce(&Path)) -> String {
    let dir = tempfile::tempdir().unwrap();
    write_npy_dir(dir.path());
    edit(dir.path());
    err_text(load_dir(dir.path(), Format::Npy))
}

#[test]
fn malformed_numpy_sets_are_errors_naming_the_file_what_was_found_and_what_is_accepted() {
    let images = |d: &Path| d.join("train_images.npy");
    let labels = |d: &Path| d.join("train_labels.npy");
    let check = |e: String, needles: &[&str]| {
        for n in needles {
            assert!(e.contains(n), "{n:?} missing from: {e}");
        }
    };
    // Images of a type that is not an image type.
    check(
        npy_error(|d| write_npy_raw(&images(d), "<i4", &[4, 3, 2, 2], false, &[0; 192])),
        &["train_images.npy", "int32", "uint8", "float32"],
    );
    // A type xbar does not read at all (float64, NumPy's default).
    check(
        npy_error(|d| write_npy_raw(&images(d), "<f8", &[4, 3, 2, 2], false, &[0; 384])),
        &["train_images.npy", "'<f8'", "float32", "astype"],
    );
    // Labels of a float type.
    check(
        npy_error(|d| write_npy_raw(&labels(d), "<f4", &[4], false, &[0; 16])),
        &["train_labels.npy", "float32", "int64"],
    );
    // Images of two dimensions.
    check(
        npy_error(|d| write_npy_raw(&images(d), "|u1", &[4, 12], false, &[0; 48])),
        &["train_images.npy", "[4, 12]", "N x C x H x W"],
    );
    // Labels of two dimensions.
    check(
        npy_error(|d| write_npy_raw(&labels(d), "|u1", &[4, 1], false, &[0; 4])),
        &["train_labels.npy", "[4, 1]", "reshape(-1)"],
    );
    // Fortran order.
    check(
        npy_error(|d| write_npy_raw(&images(d), "|u1", &[4, 3, 2, 2], true, &[0; 48])),
        &["train_images.npy", "Fortran", "ascontiguousarray"],
    );
    // Counts that do not match.
    check(
        npy_error(|d| write_npy_raw(&labels(d), "|u1", &[3], false, &[0; 3])),
        &[
            "train_images.npy",
            "4 images",
            "train_labels.npy",
            "3 labels",
        ],
    );
    // Labels out of range.
    check(
        npy_error(|d| write_npy_raw(&labels(d), "<i8", &[4], false, &i64_bytes(&[0, 1, 300, 2]))),
        &["train_labels.npy", "label 2 is 300", "0..=255"],
    );
    check(
        npy_error(|d| write_npy_raw(&labels(d), "<i4", &[4], false, &i32_bytes(&[0, -1, 2, 2]))),
        &["train_labels.npy", "label 1 is -1"],
    );
    // A missing file: the layout is named.
    check(
        npy_error(|d| std::fs::remove_file(d.join("test_labels.npy")).unwrap()),
        &["test_labels.npy", "does not exist", "train_images.npy"],
    );
    // A truncated file.
    check(
        npy_error(|d| write_npy_raw(&images(d), "|u1", &[4, 3, 2, 2], false, &[0; 47])),
        &["train_images.npy", "truncated data", "48 bytes", "47"],
    );
    // A header claiming 10^12 elements is refused before anything is allocated.
    check(
        npy_error(|d| {
            write_npy_raw(
                &images(d),
                "<f4",
                &[1_000_000, 1, 1_000, 1_000],
                false,
                &[0; 16],
            )
        }),
        &["train_images.npy", "4000000000000 bytes", "the file has 16"],
    );
    // A non-finite float.
    check(
        npy_error(|d| {
            let mut v = vec![0.5f32; 24];
            v[13] = f32::NAN;
            write_npy_raw(
                &d.join("test_images.npy"),
                "<f4",
                &[2, 3, 2, 2],
                false,
                &f32_bytes(&v),
            );
        }),
        &["test_images.npy", "value 13 (image 1) is NaN", "finite"],
    );
    // Training and test images of different shapes.
    check(
        npy_error(|d| {
            write_npy_raw(
                &d.join("test_images.npy"),
                "<f4",
                &[2, 3, 4],
                false,
                &[0; 96],
            );
        }),
        &["3x2x2", "1x3x4", "one image shape"],
    );
}

#[test]
fn the_layout_is_detected_from_the_files_present() {
    let dir = tempfile::tempdir().unwrap();
    let e = err_text(Format::detect(dir.path()));
    assert!(
        e.contains("idx:") && e.contains("cifar10:") && e.contains("npy:"),
        "{e}"
    );
    let e = err_text(load_dir(&dir.path().join("nothing"), Format::Auto));
    assert!(
        e.contains("does not exist") && e.contains("cifar10:"),
        "{e}"
    );
    common::write_idx_split(dir.path(), "train", &[0; 8], &[1, 2], 2, 2);
    common::write_idx_split(dir.path(), "t10k", &[255; 4], &[3], 2, 2);
    assert_eq!(Format::detect(dir.path()).unwrap(), Format::Idx);
    let split = load_dir(dir.path(), Format::Auto).unwrap();
    assert_eq!(
        (split.train.shape(), split.test.images.as_slice()),
        ([1, 2, 2], &[1.0; 4][..])
    );
    // Two layouts in one directory: data.format must choose.
    write_npy_dir(dir.path());
    let e = err_text(Format::detect(dir.path()));
    assert!(e.contains("idx, npy") && e.contains("data.format"), "{e}");
    assert_eq!(load_dir(dir.path(), Format::Npy).unwrap().train.channels, 3);
    assert_eq!(load_dir(dir.path(), Format::Idx).unwrap().train.channels, 1);
    // A format that is not there names its missing file.
    let e = err_text(load_dir(dir.path(), Format::Cifar10));
    assert!(e.contains("data_batch_1.bin"), "{e}");
}

/// `[data]` with `source` = `dir` and the TOML `extra` lines.
fn data_config(dir: &Path, extra: &str) -> DataConfig {
    toml::from_str(&format!("source = {:?}\n{extra}", dir.to_str().unwrap())).unwrap()
}

#[test]
fn the_data_section_normalises_per_channel_and_names_bad_fields() {
    let dir = tempfile::tempdir().unwrap();
    write_npy_dir(dir.path());
    let raw: Split = data_config(dir.path(), "").load().unwrap();
    let config = data_config(
        dir.path(),
        "format = \"npy\"\nmean = [0.5, 0.0, -1.0]\nstd = [0.25, 2.0, 0.5]\ntrain_limit = 3",
    );
    let split = config.load().unwrap();
    assert_eq!(split.train.len(), 3);
    for (set, raw_set) in [(&split.train, &raw.train), (&split.test, &raw.test)] {
        for n in 0..set.len() {
            for (c, (m, s)) in [(0.5, 0.25), (0.0, 2.0), (-1.0, 0.5)]
                .into_iter()
                .enumerate()
            {
                for i in 0..4 {
                    let x = raw_set.image(n)[4 * c + i];
                    assert_eq!(
                        set.image(n)[4 * c + i],
                        (x - m) / s,
                        "image {n} channel {c}"
                    );
                }
            }
        }
    }
    let error = |extra: &str| err_text(data_config(dir.path(), extra).load());
    let e = error("mean = [0.5]\nstd = [0.2]");
    assert!(e.contains("data.mean") && e.contains("3 channel(s)"), "{e}");
    let e = error("mean = [0.5, 0.5, 0.5]\nstd = [0.2, 0.2]");
    assert!(
        e.contains("data.mean") && e.contains("2 standard deviations"),
        "{e}"
    );
    let e = error("mean = [0.5, 0.5, 0.5]\nstd = [0.2, 0.0, 0.2]");
    assert!(e.contains("data.std") && e.contains("positive"), "{e}");
    let e = error("mean = [0.5]\nstd = [0.2]\nformat = \"cifar10\"");
    assert!(
        e.contains("data_batch_1.bin"),
        "the format is read before the channel count: {e}"
    );
    let e = err_text(
        toml::from_str::<DataConfig>("format = \"cifar10\"")
            .unwrap()
            .load(),
    );
    assert!(
        e.contains("data.format = cifar10") && e.contains("mnist10k"),
        "{e}"
    );
    assert!(toml::from_str::<DataConfig>("format = \"png\"").is_err());
}

#[test]
fn an_experiment_trains_on_a_three_channel_numpy_set_with_flips_and_normalisation() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("rgb");
    std::fs::create_dir(&data).unwrap();
    // 40 images of 3 x 4 x 4: class 0 bright in the red channel, class 1 in the blue one.
    let image = |n: usize| -> Vec<u8> {
        let hot = if n.is_multiple_of(2) { 0 } else { 2 };
        (0..3)
            .flat_map(|c| (0..16).map(move |i| if c == hot { 200 + (i % 5) as u8 } else { 20 }))
            .collect()
    };
    for (split, count) in [("train", 40), ("test", 10)] {
        let pixels: Vec<u8> = (0..count).flat_map(image).collect();
        let labels: Vec<u8> = (0..count).map(|n| (n % 2) as u8).collect();
        write_npy_split(
            &data,
            split,
            ("|u1", &[count, 3, 4, 4], &pixels),
            ("|u1", &labels),
        );
    }
    let file = dir.path().join("rgb.toml");
    std::fs::write(
        &file,
        r#"
[experiment]
name = "rgb"
seed = 3

[data]
source = "rgb"
mean = [0.5, 0.5, 0.5]
std = [0.25, 0.25, 0.25]

[network]
hidden = [8]

[train]
epochs = 5
batch_size = 8
max_shift_px = 1
flip = true

[hardware]
device = "ideal"

[[sweep]]
path = "hardware.t_inference_s"
values = [1.0]
"#,
    )
    .unwrap();
    let out = dir.path().join("out");
    let o = xbar_run(&file, &out, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let results = read(&out.join("results.csv"));
    let row = results.lines().nth(1).unwrap();
    let accuracy: f64 = row.split(',').nth(3).unwrap().parse().unwrap();
    assert!(accuracy > 0.9, "{results}");
    // The per-channel check reaches the experiment's validation, before any output.
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        read(&file)
            .replace("std = [0.25, 0.25, 0.25]", "std = [0.25]")
            .replace("mean = [0.5, 0.5, 0.5]", "mean = [0.5]"),
    )
    .unwrap();
    let o = xbar_run(&bad, &dir.path().join("bad_out"), &[]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("data.mean"), "{}", stderr(&o));
}
