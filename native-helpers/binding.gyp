{
  "targets": [
    {
      "target_name": "idloc_tap",
      "sources": ["tap.c"],
      "cflags": ["-std=gnu11", "-Wall", "-Wextra", "-Wno-unused-parameter", "-O2"],
      "conditions": [
        ["OS!='linux'", { "type": "none", "sources!": ["tap.c"] }]
      ]
    },
    {
      # The data path: batched UDP (udp.c, which holds the module init) and ChaCha20-Poly1305 on
      # Node's own OpenSSL (aead.c). No libraries to link: the EVP_* symbols resolve against node.
      "target_name": "idloc_net",
      "sources": ["udp.c", "aead.c"],
      "cflags": ["-std=gnu11", "-Wall", "-Wextra", "-Wno-unused-parameter", "-O2"],
      "conditions": [
        ["OS!='linux'", { "type": "none", "sources!": ["udp.c", "aead.c"] }]
      ]
    },
    {
      # SO_PEERCRED for the control socket: who is connecting, as the kernel tells it.
      "target_name": "idloc_cred",
      "sources": ["peercred.c"],
      "cflags": ["-std=gnu11", "-Wall", "-Wextra", "-Wno-unused-parameter", "-O2"],
      "conditions": [
        ["OS!='linux'", { "type": "none", "sources!": ["peercred.c"] }]
      ]
    }
  ]
}
