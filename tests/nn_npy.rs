//! Tests of the `.npy` reader/writer and of weight directories in PyTorch `nn.Linear`
//! layout: round trips, byte-exact agreement with `numpy.save`, and clear errors.

use std::path::Path;
use xbar::nn::{Classifier, Dense, Mlp, load_mlp, save_mlp};
use xbar::npy::{
    Elements, NpyArray, NpyData, npy_bytes, parse_npy, parse_npy_data, read_npy, write_npy,
};

/// `np.save(f, (np.arange(6, dtype='<f4').reshape(2, 3) * np.float32(-0.5)))` with
/// NumPy 2.4: version 1.0, header padded with spaces to a 64-byte boundary.
const NUMPY_2X3: &[u8] = b"\x93NUMPY\x01\x00v\x00{'descr': '<f4', 'fortran_order': False, \
'shape': (2, 3), }                                                          \n\
\x00\x00\x00\x80\x00\x00\x00\xbf\x00\x00\x80\xbf\x00\x00\xc0\xbf\x00\x00\x00\xc0\x00\x00 \xc0";
/// `np.save(f, np.array([1.5, 2.0], dtype='<f4'))`.
const NUMPY_VEC2: &[u8] = b"\x93NUMPY\x01\x00v\x00{'descr': '<f4', 'fortran_order': False, \
'shape': (2,), }                                                            \n\x00\x00\xc0?\x00\x00\x00@";
/// `np.save(f, np.float32(3.0))` (a 0-d array).
const NUMPY_SCALAR: &[u8] = b"\x93NUMPY\x01\x00v\x00{'descr': '<f4', 'fortran_order': False, \
'shape': (), }                                                              \n\x00\x00@@";

fn err_text<T: std::fmt::Debug>(r: anyhow::Result<T>) -> String {
    format!("{:#}", r.expect_err("expected an error"))
}

#[test]
fn numpy_files_parse_and_the_writer_reproduces_them_byte_for_byte() {
    let a = parse_npy(NUMPY_2X3).unwrap();
    assert_eq!(a.shape, [2, 3]);
    assert_eq!(a.data, [-0.0, -0.5, -1.0, -1.5, -2.0, -2.5]);
    assert_eq!(npy_bytes(&[2, 3], &a.data).unwrap(), NUMPY_2X3);
    let v = parse_npy(NUMPY_VEC2).unwrap();
    assert_eq!(
        (v.shape.as_slice(), v.data.as_slice()),
        (&[2usize][..], &[1.5f32, 2.0][..])
    );
    assert_eq!(npy_bytes(&[2], &v.data).unwrap(), NUMPY_VEC2);
    let s = parse_npy(NUMPY_SCALAR).unwrap();
    assert_eq!((s.shape.len(), s.data.as_slice()), (0, &[3.0f32][..]));
    assert_eq!(npy_bytes(&[], &s.data).unwrap(), NUMPY_SCALAR);
}

#[test]
fn files_round_trip_bit_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let special = [
        f32::MIN_POSITIVE / 4.0,
        -0.0,
        f32::MAX,
        f32::INFINITY,
        f32::NAN,
        1e-30,
    ];
    for shape in [vec![6], vec![2, 3], vec![3, 1, 2], vec![0, 4]] {
        let n: usize = shape.iter().product();
        let data: Vec<f32> = (0..n)
            .map(|i| special[i % special.len()] * (i as f32 - 2.5))
            .collect();
        let path = dir.path().join("a.npy");
        write_npy(&path, &shape, &data).unwrap();
        let back = read_npy(&path).unwrap();
        assert_eq!(back.shape, shape);
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&back.data), bits(&data));
        // The data starts on a 64-byte boundary, as NumPy's format requires.
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!((bytes.len() - 4 * n) % 64, 0);
    }
}

#[test]
fn version_2_headers_are_read() {
    // Same array as NUMPY_VEC2 with a version 2.0 header (u32 header length).
    let header = &NUMPY_VEC2[10..NUMPY_VEC2.len() - 8];
    let mut bytes = b"\x93NUMPY\x02\x00".to_vec();
    bytes.extend_from_slice(&(header.len() as u32).to_le_bytes());
    bytes.extend_from_slice(header);
    bytes.extend_from_slice(&NUMPY_VEC2[NUMPY_VEC2.len() - 8..]);
    assert_eq!(
        parse_npy(&bytes).unwrap(),
        NpyArray {
            shape: vec![2],
            data: vec![1.5, 2.0]
        }
    );
}

#[test]
fn malformed_files_give_clear_errors() {
    let swap = |from: &str, to: &str| -> Vec<u8> {
        let header = std::str::from_utf8(&NUMPY_VEC2[10..NUMPY_VEC2.len() - 8]).unwrap();
        let mut bytes: Vec<u8> = NUMPY_VEC2[..10].to_vec();
        bytes.extend_from_slice(header.replace(from, to).as_bytes());
        bytes.extend_from_slice(&NUMPY_VEC2[NUMPY_VEC2.len() - 8..]);
        bytes
    };
    let e = err_text(parse_npy(&swap("'<f4'", "'<f8'")));
    assert!(e.contains("'<f8'") && e.contains("float32"), "{e}");
    let e = err_text(parse_npy(&swap("'<f4'", "'>f4'")));
    assert!(e.contains("'>f4'"), "{e}");
    let e = err_text(parse_npy(&swap("False", "True ")));
    assert!(e.contains("Fortran"), "{e}");
    let e = err_text(parse_npy(&NUMPY_2X3[..NUMPY_2X3.len() - 3]));
    assert!(
        e.contains("truncated data") && e.contains("24 bytes"),
        "{e}"
    );
    let mut long = NUMPY_2X3.to_vec();
    long.extend_from_slice(&[0; 4]);
    assert!(err_text(parse_npy(&long)).contains("trailing"));
    assert!(err_text(parse_npy(&NUMPY_2X3[..40])).contains("truncated .npy file"));
    assert!(err_text(parse_npy(b"PK\x03\x04 a zip archive")).contains("magic"));
    let e = err_text(read_npy(Path::new("/nonexistent/0.weight.npy")));
    assert!(e.contains("/nonexistent/0.weight.npy"), "{e}");
    assert!(err_text(npy_bytes(&[2, 2], &[1.0; 3])).contains("4 elements"));
}

/// `NUMPY_VEC2` with another `descr`, shape `(n,)` and `body`.
fn vec_file(descr: &str, n: usize, body: &[u8]) -> Vec<u8> {
    let header = std::str::from_utf8(&NUMPY_VEC2[10..NUMPY_VEC2.len() - 8])
        .unwrap()
        .replace("'<f4'", &format!("'{descr}'"))
        .replace("(2,)", &format!("({n},)"));
    let mut bytes = NUMPY_VEC2[..10].to_vec();
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend_from_slice(body);
    bytes
}

#[test]
fn integer_arrays_are_read_and_written_as_numpy_lays_them_out() {
    // np.save(f, np.array([1, 2, 255], dtype=np.uint8)): descr '|u1', same header length.
    let u8_file = vec_file("|u1", 3, &[1, 2, 255]);
    let a = parse_npy_data(&u8_file).unwrap();
    assert_eq!(a.elements, Elements::U8(vec![1, 2, 255]));
    assert_eq!(a.to_bytes().unwrap(), u8_file);
    assert_eq!(
        parse_npy_data(&vec_file("<u1", 3, &[1, 2, 255])).unwrap(),
        a
    );
    for elements in [
        Elements::I32(vec![-7, 0, i32::MAX]),
        Elements::I64(vec![i64::MIN, -1, 300]),
        Elements::F32(vec![0.25, -3.0, 1e-20]),
    ] {
        let array = NpyData {
            shape: vec![3, 1],
            elements,
        };
        let bytes = array.to_bytes().unwrap();
        assert_eq!(bytes.len() % 64, (3 * array.elements.dtype().size()) % 64);
        assert_eq!(parse_npy_data(&bytes).unwrap(), array);
    }
    let e = err_text(parse_npy(&u8_file));
    assert!(
        e.contains("'|u1'") && e.contains("uint8") && e.contains("float32"),
        "{e}"
    );
    let e = err_text(parse_npy_data(&vec_file("<i2", 1, &[0, 0])));
    assert!(e.contains("'<i2'") && e.contains("int64"), "{e}");
}

fn small_mlp() -> Mlp {
    Mlp::random(&[6, 5, 4, 3], 11).unwrap()
}

fn logits(mut net: impl Classifier, x: &[f32]) -> Vec<f32> {
    net.logits(x, x.len() / 6).unwrap()
}

#[test]
fn saved_weights_load_back_identically() {
    let dir = tempfile::tempdir().unwrap();
    let mut mlp = small_mlp();
    mlp.layers_mut()[1]
        .bias_mut()
        .copy_from_slice(&[0.1, -0.2, 0.3, -0.4]);
    save_mlp(&mlp, dir.path()).unwrap();
    for name in [
        "0.weight.npy",
        "0.bias.npy",
        "2.weight.npy",
        "2.bias.npy",
        "network.json",
    ] {
        assert!(dir.path().join(name).is_file(), "{name} missing");
    }
    let w0 = read_npy(&dir.path().join("0.weight.npy")).unwrap();
    assert_eq!(
        w0.shape,
        [5, 6],
        "weights are stored outputs x inputs (nn.Linear layout)"
    );
    assert_eq!(load_mlp(dir.path()).unwrap(), mlp);
}

#[test]
fn pytorch_sequential_indices_import_and_compute_the_same_function() {
    // nn.Sequential(Linear, ReLU, Linear, ReLU, Linear) names its linear layers 0, 2, 4.
    let dir = tempfile::tempdir().unwrap();
    let mlp = small_mlp();
    for (layer, index) in mlp.layers().iter().zip([0, 2, 4]) {
        let shape = [layer.outputs(), layer.inputs()];
        write_npy(
            &dir.path().join(format!("{index}.weight.npy")),
            &shape,
            layer.weight(),
        )
        .unwrap();
        let bias_path = dir.path().join(format!("{index}.bias.npy"));
        write_npy(&bias_path, &[layer.outputs()], layer.bias()).unwrap();
    }
    let imported = load_mlp(dir.path()).unwrap();
    assert_eq!(imported.sizes(), [6, 5, 4, 3]);
    let x: Vec<f32> = (0..18).map(|i| (i as f32 * 0.37).sin()).collect();
    assert_eq!(logits(imported, &x), logits(mlp, &x));
}

#[test]
fn broken_weight_directories_give_clear_errors() {
    let mlp = small_mlp();
    let fresh = || {
        let dir = tempfile::tempdir().unwrap();
        save_mlp(&mlp, dir.path()).unwrap();
        std::fs::remove_file(dir.path().join("network.json")).unwrap();
        dir
    };
    // Missing bias.
    let d = fresh();
    std::fs::remove_file(d.path().join("1.bias.npy")).unwrap();
    let e = err_text(load_mlp(d.path()));
    assert!(e.contains("1.weight.npy has no matching 1.bias.npy"), "{e}");
    // A weight saved in the wrong orientation (inputs x outputs).
    let d = fresh();
    let l1 = &mlp.layers()[1];
    write_npy(
        &d.path().join("1.weight.npy"),
        &[l1.inputs(), l1.outputs()],
        l1.weight(),
    )
    .unwrap();
    let e = err_text(load_mlp(d.path()));
    assert!(
        e.contains("1.bias.npy") && e.contains("(5,)") && e.contains("outputs x inputs"),
        "{e}"
    );
    // Consecutive layers that do not fit together.
    let d = fresh();
    write_npy(&d.path().join("1.weight.npy"), &[4, 7], &[0.0; 28]).unwrap();
    let e = err_text(load_mlp(d.path()));
    assert!(
        e.contains("takes 7 inputs") && e.contains("0.weight.npy has 5 outputs"),
        "{e}"
    );
    // A 1-D weight.
    let d = fresh();
    write_npy(&d.path().join("0.weight.npy"), &[30], &[0.0; 30]).unwrap();
    assert!(err_text(load_mlp(d.path())).contains("2-D"));
    // A file that is not a linear layer.
    let d = fresh();
    write_npy(&d.path().join("1.running_mean.npy"), &[4], &[0.0; 4]).unwrap();
    assert!(err_text(load_mlp(d.path())).contains("unexpected file 1.running_mean.npy"));
    // An empty directory and a missing one.
    let d = tempfile::tempdir().unwrap();
    assert!(err_text(load_mlp(d.path())).contains("no N.weight.npy"));
    assert!(err_text(load_mlp(&d.path().join("nope"))).contains("cannot read weight directory"));
    // A manifest that disagrees with the files.
    let d = tempfile::tempdir().unwrap();
    save_mlp(&mlp, d.path()).unwrap();
    let manifest = r#"{"kind": "mlp", "sizes": [6, 2], "hidden_activation": "relu"}"#;
    std::fs::write(d.path().join("network.json"), manifest).unwrap();
    let e = err_text(load_mlp(d.path()));
    assert!(e.contains("network.json lists layer sizes [6, 2]"), "{e}");
    // Saving a smaller network over a bigger one would leave a stale layer behind.
    let other = Mlp::new(vec![Dense::new(6, 2, vec![0.0; 12], vec![0.0; 2]).unwrap()]).unwrap();
    let e = err_text(save_mlp(&other, d.path()));
    assert!(
        e.contains("1.weight.npy") && e.contains("empty directory"),
        "{e}"
    );
}
