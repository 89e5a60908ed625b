// Loads protos/ alone (no googleapis checkout) with @grpc/proto-loader and calls Assign.
// Usage: node assign.js PROTOS_DIR TARGET EXPERIMENT PARTICIPANT; prints the reply as JSON.
const grpc = require("@grpc/grpc-js");
const protoLoader = require("@grpc/proto-loader");

const [protos, target, experimentId, participantId] = process.argv.slice(2);
const definition = protoLoader.loadSync("assignsvc/v1/assignment_service.proto", {
  includeDirs: [protos],
  keepCase: true,
  longs: String,
  enums: String,
  defaults: false,
});
const v1 = grpc.loadPackageDefinition(definition).assignsvc.v1;
const client = new v1.AssignmentService(target, grpc.credentials.createInsecure());
client.Assign({ experiment_id: experimentId, participant_id: participantId }, (error, reply) => {
  if (error) {
    console.error(JSON.stringify({ code: error.code, details: error.details }));
    process.exit(1);
  }
  console.log(JSON.stringify(reply));
  client.close();
});
