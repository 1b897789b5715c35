{
  "targets": [
    {
      "target_name": "rbd_native",
      "sources": ["native/rbd.cc"],
      "dependencies": ["<!(node -p \"require('node-addon-api').targets\"):node_addon_api_except"],
      "libraries": ["-lrbd", "-lrados"],
      "cflags_cc": ["-Wall", "-Wextra"]
    }
  ]
}
