{
  "targets": [
    {
      "target_name": "fs_native",
      "sources": ["native/fs.cc"],
      "dependencies": ["<!(node -p \"require('node-addon-api').targets\"):node_addon_api_except"],
      "defines": ["_FILE_OFFSET_BITS=64"],
      "cflags_cc": ["-Wall", "-Wextra"]
    }
  ]
}
