use actix_wal::*;
#[test]
fn smoke() {
    let d = tempfile::tempdir().unwrap();
    let opts = LogOptions {
        segment_size_bytes: 4096,
        max_record_bytes: 1000,
        ..Default::default()
    };
    let (mut w, out) = LogWriter::open(d.path(), opts.clone()).unwrap();
    assert_eq!(out.next_lsn, Lsn(1));
    for i in 0..200u32 {
        let p = vec![i as u8; (i % 50) as usize];
        w.append(&p).unwrap();
        if i % 7 == 0 {
            w.sync().unwrap();
        }
    }
    w.append_transaction(&[b"a".to_vec(), b"bb".to_vec()])
        .unwrap();
    w.sync().unwrap();
    drop(w);
    let recs: Vec<_> = LogReader::open(d.path())
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    assert_eq!(recs.len(), 202);
    for (i, r) in recs.iter().enumerate() {
        assert_eq!(r.lsn, Lsn(i as u64 + 1));
    }
    let segs = std::fs::read_dir(d.path()).unwrap().count();
    println!("segments+lock {segs}");
    let (w, out) = LogWriter::open(d.path(), opts.clone()).unwrap();
    assert_eq!(out.next_lsn, Lsn(203));
    assert_eq!(out.records, 202);
    drop(w);
}
