use super::*;

#[test]
fn info_fields_are_read_by_exact_name() {
    let info = "# Stats\r\nevicted_keys_x:9\r\nevicted_keys:42\r\nexpired_keys:7\r\n";
    assert_eq!(info_field(info, "evicted_keys"), Some(42));
    assert_eq!(info_field(info, "expired_keys"), Some(7));
    assert_eq!(info_field(info, "evicted"), None);
}

#[test]
fn ttl_rounds_up_to_whole_milliseconds() {
    assert_eq!(ttl_millis(None), None);
    assert_eq!(ttl_millis(Some(Duration::from_micros(1))), Some(1));
    assert_eq!(ttl_millis(Some(Duration::from_micros(1001))), Some(2));
    assert_eq!(ttl_millis(Some(Duration::from_secs(2))), Some(2000));
    for huge in [
        Duration::MAX,
        Duration::from_secs(u64::MAX),
        Duration::from_secs(i64::MAX as u64),
    ] {
        assert_eq!(ttl_millis(Some(huge)), Some(MAX_PX as u64), "{huge:?}");
    }
}
