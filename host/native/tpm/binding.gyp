{
  "targets": [
    {
      "target_name": "camos_tpm",
      "sources": ["src/addon.cc"],
      "dependencies": ["<!(node -p \"require('node-addon-api').targets\"):node_addon_api_except"],
      "defines": ["NAPI_VERSION=8"],
      "cflags_cc": ["-std=c++17", "-Wall", "-Wextra", "<!@(pkg-config --cflags tss2-esys tss2-tctildr tss2-rc tss2-mu)"],
      "libraries": ["<!@(pkg-config --libs tss2-esys tss2-tctildr tss2-rc tss2-mu)"]
    }
  ]
}
