# The seed-000 fleet written in Nix: `wgfleet validate --fleet fleet.nix` evaluates it with
# nix-instantiate and must give exactly the same fleet as fleet.json.
let
  keys = "../../secrets/examples/seed-000";
  host = name: publicKey: extra:
    { inherit publicKey; privateKeyFile = "${keys}/${name}.age"; } // extra;
  # Workers are numbered: worker-N gets id N, so 10.50.0.(N+1).
  workers = [ 1 2 ];
  workerName = n: "worker-${toString n}";
  workerKeys = {
    "1" = "um/TOLbxUvqJwIOGdbFPn9uBh/Es4shlVXFlWyEYvng=";
    "2" = "cOW07yOnwkL6IrWiXjj2ZtKizAAu+k9RWgxFiIvoJwU=";
  };
  forWorkers = f: builtins.listToAttrs (map (n: { name = workerName n; value = f n; }) workers);
in
{
  version = 1;
  hosts = {
    cp = host "cp" "j65iAJ6NC3HojTdVgriVYdBrd3UzFNydYKCvugCZnBM=" {
      endpoint = "203.0.113.10";
      description = "control plane";
    };
    proxy = host "proxy" "3jfcaaPzGrCH1/Gd5HofHAJOtpt+VChIBIH7v0SZnVo=" {
      endpoint = "192.0.2.30";
      description = "proxy server";
    };
  } // forWorkers (n: host (workerName n) workerKeys.${toString n} { });
  groups.workers = map workerName workers;
  networks.wg0 = {
    subnet = "10.50.0.0/24";
    listenPort = 51821;
    persistentKeepalive = 25;
    topology.hubAndSpoke.hubs = [ "cp" ];
    members = {
      cp = { id = 0; forwarding = true; };
      proxy = { address = "10.50.0.30"; reach = [ "10.50.0.0/24" ]; };
    } // forWorkers (n: { id = n; });
  };
}
