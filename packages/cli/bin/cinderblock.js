#!/usr/bin/env node
// The `cinderblock` command. A committed shim, so npm links the command at install time, before
// the first build has made dist/ (run `npm run build` before using it).
import "../dist/main.js";
