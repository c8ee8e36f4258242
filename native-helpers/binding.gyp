{
  "targets": [
    {
      "target_name": "idloc_tap",
      "sources": ["tap.c"],
      "cflags": ["-std=gnu11", "-Wall", "-Wextra", "-Wno-unused-parameter", "-O2"],
      "conditions": [
        ["OS!='linux'", { "type": "none", "sources!": ["tap.c"] }]
      ]
    }
  ]
}
