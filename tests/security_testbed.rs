//! The security review's host findings (issue 14) on a real systemd host (an nspawn container
//! of the testbed): the boot drop-in's binary, `--root`, and /etc/wireguard itself.

#[path = "support/testbed.rs"]
mod testbed;
#[path = "support/wgfleet_on.rs"]
mod wgfleet_on;

use testbed::Testbed;
use wgfleet_on::{firewall, printed, provision, seed000_fleet, seed000_hosts, set_fleet};

const DROPIN: &str = "/etc/systemd/system/wg-quick@.service.d/wgfleet-firewall.conf";

#[test]
fn host_findings_of_the_security_review() {
    let bed = Testbed::new("security").expect("testbed");
    let hosts = seed000_hosts(&bed, &["cp"]);
    let cp = &hosts[0];
    provision(cp, &["cp"]);
    set_fleet(cp, &seed000_fleet(&[]));
    let run = |exe: &str, extra: &str| {
        cp.sh(&format!(
            "{exe} apply {extra} --fleet /x/fleet.json --host cp -i /x/identity.txt"
        ))
        .unwrap()
    };
    let untouched = |why: &str| {
        assert!(
            cp.sh("test -e /etc/wireguard/wg0.conf")
                .unwrap()
                .status
                .code()
                == Some(1),
            "{why}: wg0.conf was written"
        );
        assert!(
            !firewall(cp).contains("WGFLEET"),
            "{why}: chains were added"
        );
        assert!(
            cp.sh(&format!("test -e {DROPIN}")).unwrap().status.code() == Some(1),
            "{why}: the drop-in was written"
        );
    };

    // Finding 4: --root moves files only, so apply refuses it before touching anything.
    let out = run("/x/wgfleet", "--root /x/r");
    assert_eq!(out.status.code(), Some(1), "{}", printed(&out));
    assert!(
        printed(&out).contains("apply refuses --root"),
        "{}",
        printed(&out)
    );
    assert!(!cp.dir().join("r").exists(), "--root DIR was written to");
    untouched("apply --root");

    // Finding 3: a binary others can replace is never what the drop-in runs as root.
    cp.sh_ok("mkdir -m 0777 /x/open && cp /x/wgfleet /x/open/wgfleet")
        .unwrap();
    let out = run("/x/open/wgfleet", "");
    assert_eq!(out.status.code(), Some(1), "{}", printed(&out));
    assert!(
        printed(&out).contains("someone other than root can replace it"),
        "{}",
        printed(&out)
    );
    untouched("apply from a world-writable directory");

    // A root-owned binary in a directory with a space: the drop-in quotes it, and systemd runs
    // it (the chains come back when the interface restarts, as after a reboot).
    cp.sh_ok("mkdir -m 0755 '/x/my dir' && cp /x/wgfleet '/x/my dir/wgfleet'")
        .unwrap();
    let out = run("'/x/my dir/wgfleet'", "");
    assert!(out.status.success(), "{}", printed(&out));
    let dropin = cp.sh_ok(&format!("cat {DROPIN}")).unwrap();
    assert!(
        dropin.contains("ExecStartPre=-\"/x/my dir/wgfleet\" firewall-restore\n"),
        "{dropin}"
    );
    let fw = firewall(cp);
    assert!(fw.contains("WGFLEET-INPUT"), "{fw}");
    cp.sh_ok("iptables -D INPUT -j WGFLEET-INPUT && iptables -F WGFLEET-INPUT && iptables -X WGFLEET-INPUT")
        .unwrap();
    cp.sh_ok("systemctl restart wg-quick@wg0").unwrap();
    assert_eq!(
        firewall(cp),
        fw,
        "the drop-in's quoted binary restored the chains"
    );

    // Finding 9: an existing /etc/wireguard opened up is tightened back to 0700 …
    cp.sh_ok("chmod 0755 /etc/wireguard && rm /etc/wireguard/wg0.conf")
        .unwrap();
    let out = run("/x/wgfleet", "");
    assert!(out.status.success(), "{}", printed(&out));
    assert_eq!(cp.sh_ok("stat -c %a /etc/wireguard").unwrap().trim(), "700");
    // … a linked wg0.conf is not followed (its target neither copied nor replaced) …
    cp.sh_ok("echo 'not wireguard' > /x/target && ln -sf /x/target /etc/wireguard/wg0.conf")
        .unwrap();
    let out = run("/x/wgfleet", "");
    assert_eq!(out.status.code(), Some(1), "{}", printed(&out));
    assert!(printed(&out).contains("symbolic link"), "{}", printed(&out));
    assert_eq!(cp.sh_ok("cat /x/target").unwrap(), "not wireguard\n");
    assert!(
        cp.sh("test -e /etc/wireguard/wg0.conf.wgfleet-previous")
            .unwrap()
            .status
            .code()
            == Some(1),
        "the link's target was copied"
    );
    // … and a linked /etc/wireguard is refused.
    cp.sh_ok("rm -rf /etc/wireguard && mkdir -m 0700 /x/wg && ln -s /x/wg /etc/wireguard")
        .unwrap();
    let out = run("/x/wgfleet", "");
    assert_eq!(out.status.code(), Some(1), "{}", printed(&out));
    assert!(printed(&out).contains("symbolic link"), "{}", printed(&out));
    assert!(!cp.dir().join("wg/wg0.conf").exists());
}
