// The S3 server of the blob tests: s3rver on 127.0.0.1 at a free port, its objects under the
// directory given as the first argument, one bucket ("depot"). Prints "listening <port>" once it
// accepts connections (tests/support/s3_server.cpp waits for that line). Credentials: s3rver's
// fixed S3RVER / S3RVER (it checks the access key, not the V4 signature). Run it with
// `node --openssl-legacy-provider`: its listing pages need DES. Virtual-host-style requests
// name the bucket as <bucket>.s3.localhost.
'use strict';
const S3rver = require('s3rver');

const directory = process.argv[2];
const server = new S3rver({
  address: '127.0.0.1',
  port: 0,
  directory,
  silent: true,
  serviceEndpoint: 'localhost',
  configureBuckets: [{ name: 'depot' }],
});
server.run().then(
  (address) => console.log(`listening ${address.port}`),
  (error) => {
    console.error(error);
    process.exit(1);
  },
);
process.on('SIGTERM', () => process.exit(0));
