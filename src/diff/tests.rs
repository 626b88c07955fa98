//! The diff of one interface: actions, changes, drift and the one-pass comparison.

use super::*;

const BASE: &str = "[Interface]\nAddress = 10.0.0.1/24\nListenPort = 51820\nPrivateKey = K\n\n# a\n[Peer]\nPublicKey = A\nAllowedIPs = 10.0.0.2/32\n";
fn up() -> UnitState {
    UnitState {
        active_state: "active".into(),
        enabled: true,
    }
}
fn live_of(text: &str) -> Live {
    let c = wgconf::parse(text);
    Live {
        listen_port: c
            .interface
            .get("listenport")
            .and_then(|v| v.last().cloned()),
        peers: c
            .peers
            .iter()
            .map(|(k, p)| {
                (
                    k.clone(),
                    LivePeer {
                        allowed_ips: p.allowed_ips.clone(),
                        keepalive: p.keepalive.clone(),
                        has_psk: p.preshared_key.is_some(),
                        ..LivePeer::default()
                    },
                )
            })
            .collect(),
        ..Live::default()
    }
}
/// The shortcut of a run with nothing to do says "equal" only where the full comparison
/// finds no peer drift.
#[test]
fn peers_match_agrees_with_the_full_comparison() {
    let two = "[Interface]\nPrivateKey = K\n\n# a\n[Peer]\nPublicKey = A\nAllowedIPs = 10.0.0.2/32, 10.1.0.0/16\nPersistentKeepalive = 25\n\n[Peer]\nPublicKey = B\nPresharedKey = P\nAllowedIPs = 10.0.0.3/32\n";
    let live = live_of(two);
    let files = [
        two.to_owned(),
        // Same meaning: order, case, comments, AllowedIPs split and repeated, keepalive 0.
        "[Interface]\nPrivateKey = K\n[peer]\npublickey = B\npresharedkey = P # psk\nAllowedIPs = 10.0.0.3/32\n[Peer]\nPublicKey = A\nAllowedIPs = 10.1.0.0/16\nAllowedIPs = 10.0.0.2/32,10.0.0.2/32\nPersistentKeepalive = 25\n".to_owned(),
        two.replace("10.1.0.0/16", "10.2.0.0/16"),
        two.replace("PersistentKeepalive = 25\n", ""),
        two.replace("PresharedKey = P\n", ""),
        two.replace("PublicKey = B", "PublicKey = C"),
        format!("{two}[Peer]\nPublicKey = D\nAllowedIPs = 10.0.0.4/32\n"),
        format!("{two}[Peer]\nPublicKey = A\nAllowedIPs = 10.0.0.2/32\n"),
        format!("{two}[Peer]\nAllowedIPs = 10.0.0.5/32\n"),
        two.replace("PersistentKeepalive = 25", "PersistentKeepalive = 0"),
    ];
    for file in &files {
        let full = peer_drift(&wgconf::parse(file), &live, &BTreeMap::new());
        if peers_match(file, &live) {
            assert!(full.is_empty(), "{file}: {full:?}");
        }
    }
    assert!(peers_match(&files[0], &live) && peers_match(&files[1], &live));
    for file in &files[2..] {
        assert!(!peers_match(file, &live), "{file}");
    }
    assert_eq!(interface_part(two), "[Interface]\nPrivateKey = K\n\n# a\n");
    let odd = "[Interface]\nMTU = 1280\n[PeerX]\nA = 1\n [peer] # first\nPublicKey = A\n";
    assert_eq!(
        interface_part(odd),
        "[Interface]\nMTU = 1280\n[PeerX]\nA = 1\n"
    );
}

/// `desired` against `on_disk`, with the interface up and running BASE.
fn with_base_live(desired: &str, on_disk: &str) -> NetworkDiff {
    diff_network(
        "wg0",
        desired,
        Some(on_disk),
        Some(&live_of(BASE)),
        &up(),
        &names(),
    )
}

fn names() -> BTreeMap<String, String> {
    [
        ("A".to_owned(), "a".to_owned()),
        ("B".to_owned(), "b".to_owned()),
    ]
    .into()
}

#[test]
fn nothing_changed_means_nothing_to_do() {
    let d = with_base_live(BASE, BASE);
    assert_eq!(
        (d.action, d.write_file, d.enable, d.changes.len()),
        (Action::Nothing, false, false, 0)
    );
}

#[test]
fn a_new_peer_is_a_reload() {
    let new = format!("{BASE}\n[Peer]\nPublicKey = B\nAllowedIPs = 10.0.0.3/32\n");
    let d = with_base_live(&new, BASE);
    assert_eq!(d.action, Action::Reload);
    assert!(d.write_file);
    assert!(matches!(&d.changes[0], Change::PeerAdded { peer, .. } if peer == "b"));
}

#[test]
fn private_key_and_port_reload_but_mtu_restarts() {
    let key = BASE.replace("PrivateKey = K", "PrivateKey = K2");
    let d = diff_network("wg0", &key, Some(BASE), None, &up(), &names());
    assert_eq!(d.action, Action::Reload);
    assert_eq!(
        d.changes,
        vec![Change::InterfaceChanged {
            key: "PrivateKey".into(),
            from: None,
            to: None
        }]
    );
    let mtu = BASE.replace("PrivateKey = K\n", "PrivateKey = K\nMTU = 1280\n");
    assert_eq!(
        diff_network("wg0", &mtu, Some(BASE), None, &up(), &names()).action,
        Action::Restart
    );
}

#[test]
fn table_off_rewrites_the_file_and_table_back_to_auto_restarts() {
    let off = BASE.replace("PrivateKey = K\n", "PrivateKey = K\nTable = off\n");
    let d = diff_network("wg0", &off, Some(BASE), None, &up(), &names());
    assert_eq!((d.action, d.write_file), (Action::WriteFile, true));
    assert_eq!(
        d.changes,
        vec![Change::InterfaceChanged {
            key: "Table".into(),
            from: None,
            to: Some("off".into())
        }]
    );
    // With a new peer beside it, the reload adds the routes.
    let more = format!("{off}\n[Peer]\nPublicKey = B\nAllowedIPs = 10.9.0.0/24\n");
    let d = diff_network("wg0", &more, Some(BASE), None, &up(), &names());
    assert_eq!(d.action, Action::Reload);
    let d = diff_network("wg0", BASE, Some(&off), None, &up(), &names());
    assert_eq!(d.action, Action::Restart);
    let other = BASE.replace("PrivateKey = K\n", "PrivateKey = K\nTable = 1234\n");
    let d = diff_network("wg0", &off, Some(&other), None, &up(), &names());
    assert_eq!(d.action, Action::Restart);
}

#[test]
fn formatting_only_rewrites_the_file() {
    let hand_made = "[Interface]\n# by hand\nPrivateKey = K\nListenPort = 51820\nAddress = 10.0.0.1/24\n[Peer]\nAllowedIPs = 10.0.0.2/32\nPublicKey = A\n";
    let d = with_base_live(BASE, hand_made);
    assert_eq!(d.action, Action::WriteFile);
    assert_eq!(d.changes, vec![Change::FileRewritten]);
}

#[test]
fn live_drift_with_an_unchanged_file_is_healed_by_a_reload() {
    let mut live = live_of(BASE);
    live.peers.clear();
    let d = diff_network("wg0", BASE, Some(BASE), Some(&live), &up(), &names());
    assert_eq!(d.action, Action::Reload);
    assert!(!d.write_file);
}

#[test]
fn a_stopped_or_disabled_unit_is_started_and_enabled() {
    let stopped = UnitState {
        active_state: "failed".into(),
        enabled: false,
    };
    let d = diff_network("wg0", BASE, Some(BASE), None, &stopped, &names());
    assert_eq!((d.action, d.enable), (Action::Start, true));
    let d = diff_network("wg0", BASE, None, None, &stopped, &names());
    assert!(d.write_file && d.changes.contains(&Change::FileMissing));
}

#[test]
fn live_mtu_or_addresses_unlike_the_file_restart_and_a_live_key_reloads() {
    let conf = BASE.replace("PrivateKey = K\n", "PrivateKey = K\nMTU = 1380\n");
    let mut live = live_of(&conf);
    live.mtu = Some("1420".into());
    let d = diff_network("wg0", &conf, Some(&conf), Some(&live), &up(), &names());
    assert_eq!(d.action, Action::Restart);
    assert_eq!(
        d.changes,
        vec![Change::LiveDrift {
            detail: "MTU is 1420 live".into()
        }]
    );
    live.mtu = Some("1380".into());
    live.addresses = Some(["10.0.0.1/24".parse().unwrap()].into());
    let d = diff_network("wg0", &conf, Some(&conf), Some(&live), &up(), &names());
    assert_eq!(d.action, Action::Nothing, "{:?}", d.changes);
    live.addresses = Some(["10.0.0.9/24".parse().unwrap()].into());
    let d = diff_network("wg0", &conf, Some(&conf), Some(&live), &up(), &names());
    assert_eq!(d.action, Action::Restart);

    let private = SecretKey::generate_private();
    let conf = BASE.replace(
        "PrivateKey = K",
        &format!("PrivateKey = {}", *private.to_base64()),
    );
    let mut live = live_of(&conf);
    live.public_key = Some(private.public_key());
    let d = diff_network("wg0", &conf, Some(&conf), Some(&live), &up(), &names());
    assert_eq!(d.action, Action::Nothing);
    live.public_key = Some(SecretKey::generate_private().public_key());
    let d = diff_network("wg0", &conf, Some(&conf), Some(&live), &up(), &names());
    assert_eq!(d.action, Action::Reload);
    assert!(!format!("{:?}", d.changes).contains(private.to_base64().as_str()));
}

#[test]
fn an_interrupted_job_is_finished_by_the_next_run() {
    let d = with_base_live(BASE, BASE);
    let d = finish_interrupted(d, Action::Restart);
    assert_eq!(d.action, Action::Restart);
    assert_eq!(
        d.changes,
        vec![Change::Interrupted {
            action: Action::Restart
        }]
    );
    // Already as disruptive: said, and the action stays; a removal stays a removal.
    let again = finish_interrupted(d.clone(), Action::Reload);
    assert_eq!(again.action, Action::Restart);
    assert_eq!(again.changes.len(), 2);
    let removed = finish_interrupted(diff_removed("wg0"), Action::Restart);
    assert_eq!(removed.action, Action::Remove);
    // A write without a job (formatting only) leaves nothing to finish.
    let d = diff_network("wg0", BASE, Some(BASE), None, &up(), &names());
    assert_eq!(
        finish_interrupted(d, Action::WriteFile).action,
        Action::Nothing
    );
}

#[test]
fn addresses_are_read_from_ip() {
    let text = "5: wg0    inet 10.50.0.11/24 scope global wg0\\       valid_lft forever preferred_lft forever\n5: wg0    inet6 fd00::b/64 scope global \\       valid_lft forever preferred_lft forever\n";
    let got: Vec<String> = parse_addresses(text)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(got, ["10.50.0.11/24", "fd00::b/64"]);
}

#[test]
fn dump_parsing_keeps_no_key_material() {
    let dump = "PRIV\tPUB\t51820\toff\nA\tPSK\t192.0.2.1:51820\t10.0.0.2/32,10.1.0.0/16\t0\t0\t0\t25\nB\t(none)\t(none)\t(none)\t0\t0\t0\toff\n";
    let live = parse_dump(dump);
    assert_eq!(live.listen_port.as_deref(), Some("51820"));
    assert!(live.peers["A"].has_psk && !live.peers["B"].has_psk);
    assert_eq!(live.peers["A"].allowed_ips.len(), 2);
    assert!(live.peers["B"].allowed_ips.is_empty());
    assert!(!format!("{live:?}").contains("PRIV") && !format!("{live:?}").contains("PSK\""));
    let private = SecretKey::generate_private();
    let dump = format!("{}\tPUB\t51820\toff\n", *private.to_base64());
    let live = parse_dump(&dump);
    assert_eq!(live.public_key, Some(private.public_key()));
    assert!(!format!("{live:?}").contains(private.to_base64().as_str()));
}

/// A change of peers alone carries the peers to set live; anything at the interface level, or
/// a run that finishes a killed one, goes through the unit.
#[test]
fn a_peer_only_reload_carries_its_delta() {
    let new = format!("{BASE}\n[Peer]\nPublicKey = B\nAllowedIPs = 10.0.0.3/32\n");
    let d = with_base_live(&new, BASE);
    let want = PeerDelta {
        set: vec!["B".into()],
        remove: vec![],
    };
    assert_eq!(d.delta.as_ref(), Some(&want));
    // The listen port is `wg syncconf`'s to set: no delta.
    let port = new.replace("ListenPort = 51820", "ListenPort = 51821");
    let d = with_base_live(&port, BASE);
    assert_eq!((d.action, d.delta), (Action::Reload, None));
    // Nor when the live interface drifted at the interface level.
    let mut live = live_of(BASE);
    live.listen_port = Some("1".into());
    let d = diff_network("wg0", &new, Some(BASE), Some(&live), &up(), &names());
    assert_eq!(d.delta, None);
    let d = finish_interrupted(with_base_live(&new, BASE), Action::Reload);
    assert_eq!(d.delta, None);
    // A restart, a start, and no live dump: no delta.
    let mtu = new.replace("[Interface]\n", "[Interface]\nMTU = 1280\n");
    assert_eq!(with_base_live(&mtu, BASE).delta, None);
    let down = UnitState {
        active_state: "inactive".into(),
        enabled: true,
    };
    assert_eq!(
        diff_network("wg0", &new, Some(BASE), None, &down, &names()).delta,
        None
    );
}

/// Drift with the file unchanged (a peer removed or added by hand) is healed by the delta too.
#[test]
fn live_drift_of_peers_is_a_delta() {
    let mut live = live_of(BASE);
    live.peers.remove("A");
    live.peers.insert("X".into(), LivePeer::default());
    let d = diff_network("wg0", BASE, Some(BASE), Some(&live), &up(), &names());
    assert_eq!(d.action, Action::Reload);
    let want = PeerDelta {
        set: vec!["A".into()],
        remove: vec!["X".into()],
    };
    assert_eq!(d.delta, Some(want));
}

/// What the dump cannot show (a PSK's value, an endpoint) counts from the file it replaces;
/// what only the dump shows counts from it; a key `wg set` cannot say, or too many peers,
/// leave it to the unit.
#[test]
fn the_delta_is_exact_or_none() {
    let two = "[Interface]\nPrivateKey = K\n[Peer]\nPublicKey = A\nPresharedKey = P\nEndpoint = h:1\nAllowedIPs = 10.0.0.2/32\n[Peer]\nPublicKey = B\nAllowedIPs = 10.0.0.3/32\nPersistentKeepalive = 25\n";
    let live = live_of(two);
    let old = wgconf::parse(two);
    let delta = |text: &str| peer_delta(&wgconf::parse(text), &old, &live);
    let set = |keys: &[&str]| {
        Some(PeerDelta {
            set: keys.iter().map(|k| (*k).to_owned()).collect(),
            remove: vec![],
        })
    };
    assert_eq!(delta(two), set(&[]));
    assert_eq!(
        delta(&two.replace("PresharedKey = P", "PresharedKey = Q")),
        set(&["A"])
    );
    assert_eq!(delta(&two.replace("h:1", "h:2")), set(&["A"]));
    assert_eq!(delta(&two.replace("= 25", "= 0")), set(&["B"]));
    assert_eq!(
        delta(&two.replace("10.0.0.3/32", "10.0.0.3/32, 10.9.0.0/16")),
        set(&["B"])
    );
    assert_eq!(delta(&format!("{two}Foo = 1\n")), None);
    let many: String = (0..=MAX_PEERS)
        .map(|i| {
            format!(
                "[Peer]\nPublicKey = N{i}\nAllowedIPs = 10.1.{}.{}/32\n",
                i / 250,
                i % 250
            )
        })
        .collect();
    assert_eq!(delta(&format!("{two}{many}")), None);
}

/// `wg set`'s clauses: removals first, every field of a set peer as the file has it (a PSK it
/// lacks cleared with /dev/null, keepalive off), keys only through the paths it is given.
#[test]
fn wg_set_arguments_say_each_peer_whole() {
    let text = "[Interface]\nPrivateKey = K\n[Peer]\nPublicKey = A\nPresharedKey = SECRET\nEndpoint = h:1\nAllowedIPs = 10.0.0.2/32, 10.9.0.0/16\nPersistentKeepalive = 25\n[Peer]\nPublicKey = B\nAllowedIPs = 10.0.0.3/32\n";
    let conf = wgconf::parse(text);
    let delta = PeerDelta {
        set: vec!["A".into(), "B".into(), "GONE".into()],
        remove: vec!["X".into()],
    };
    let clauses = clauses(&conf, &delta);
    assert_eq!(clauses.len(), 3);
    let args = wg_set_args(&clauses, |i| format!("/dev/fd/{}", 10 + i));
    let want = "peer X remove \
        peer A preshared-key /dev/fd/10 endpoint h:1 persistent-keepalive 25 allowed-ips 10.0.0.2/32,10.9.0.0/16 \
        peer B preshared-key /dev/null persistent-keepalive off allowed-ips 10.0.0.3/32";
    assert_eq!(args.join(" "), want);
    assert!(!args.iter().any(|a| a.contains("SECRET")));
}
