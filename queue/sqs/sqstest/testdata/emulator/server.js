// Starts an SQS emulator on 127.0.0.1 for crew's tests and prints
// "listening PORT" on standard output once it serves. It exits when its
// standard input closes, so that it never outlives the test that started it.
"use strict";
const { createSqsServer } = require("local-aws-sqs");

const port = Number(process.argv[2] || 0);

createSqsServer({
  port,
  hostname: "127.0.0.1",
  accountId: "000000000000",
  region: "us-east-1",
  emulateQueueCreationLifecycle: false,
}).then((server) => {
  process.stdout.write("listening " + server.address().port + "\n");
}, (err) => {
  process.stderr.write("sqs emulator: " + err.stack + "\n");
  process.exit(1);
});

process.stdin.on("end", () => process.exit(0));
process.stdin.resume();
