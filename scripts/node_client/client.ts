/**
 * A small Node.js client for the ditserve engine, typed by stubs generated from
 * proto/ditserve/v1/engine.proto (scripts/gen_node_stubs.sh writes them to generated/).
 *
 *   node scripts/node_client/dist/client.js HOST:PORT [--prompt P] [--size PX] [--steps N] [--seed S]
 *
 * Runs Generate, Stream and Stats against the engine, checks nothing itself, and
 * prints one JSON summary of what arrived on stdout. An RPC error exits 1 with
 * the gRPC status on stderr.
 */
import { createHash } from "node:crypto";
import * as path from "node:path";
import { parseArgs } from "node:util";

import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";

import type { ProtoGrpcType } from "./generated/engine";
import type { EngineClient } from "./generated/ditserve/v1/Engine";
import type { GenerateRequest } from "./generated/ditserve/v1/GenerateRequest";
import type { GenerateResponse__Output } from "./generated/ditserve/v1/GenerateResponse";
import type { Output__Output } from "./generated/ditserve/v1/Output";
import type { StatsResponse__Output } from "./generated/ditserve/v1/StatsResponse";

/** The contract, read at run time from the repository's proto/ (this file runs from dist/). */
const PROTO_ROOT = path.resolve(__dirname, "..", "..", "..", "proto");
const PROTO_FILE = "ditserve/v1/engine.proto";

/** Must match the flags of proto-loader-gen-types in scripts/gen_node_stubs.sh: they shape the types. */
const LOADER_OPTIONS: protoLoader.Options = {
  keepCase: true, // field names as in the proto: num_inference_steps, not numInferenceSteps
  longs: String, // int64 fields (seed, counters) arrive as decimal strings
  enums: String,
  defaults: true,
  oneofs: true, // GenerateEvent.event names the field that is set
  includeDirs: [PROTO_ROOT],
};

/** Seconds each call may take: the tiny CPU models finish in a few. */
const DEADLINE_S = 120;

const PNG_MAGIC = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

function connect(address: string): EngineClient {
  const definition = protoLoader.loadSync(PROTO_FILE, LOADER_OPTIONS);
  const proto = grpc.loadPackageDefinition(definition) as unknown as ProtoGrpcType;
  return new proto.ditserve.v1.Engine(address, grpc.credentials.createInsecure(), {
    "grpc.max_receive_message_length": -1,
  });
}

function callOptions(): grpc.CallOptions {
  return { deadline: new Date(Date.now() + DEADLINE_S * 1000) };
}

/** Turns a callback-style unary call into a promise. */
function unary<T>(start: (callback: grpc.requestCallback<T>) => void): Promise<T> {
  return new Promise((resolve, reject) => {
    start((error, value) => (error ? reject(error) : resolve(value as T)));
  });
}

/** What the bytes of one output are, read from the bytes themselves. */
function describeOutput(output: Output__Output) {
  const data = output.data;
  const isPng = data.length >= 24 && data.subarray(0, 8).equals(PNG_MAGIC);
  return {
    mime_type: output.mime_type,
    png_magic: isPng,
    bytes: data.length,
    size_bytes: Number(output.size_bytes),
    sha256: createHash("sha256").update(data).digest("hex"),
    sha256_field: output.sha256,
    width: output.width,
    height: output.height,
    // The PNG's own IHDR chunk: width and height as big-endian uint32 at bytes 16 and 20.
    png_width: isPng ? data.readUInt32BE(16) : null,
    png_height: isPng ? data.readUInt32BE(20) : null,
  };
}

async function generate(client: EngineClient, request: GenerateRequest) {
  const response = await unary<GenerateResponse__Output>((cb) => client.Generate(request, callOptions(), cb));
  return {
    model: response.model,
    seed: response.seed,
    request_id: response.request_id,
    outputs: response.outputs.map(describeOutput),
  };
}

async function stream(client: EngineClient, request: GenerateRequest) {
  const kinds: string[] = [];
  const steps: number[] = [];
  const totalSteps = new Set<number>();
  let completed: GenerateResponse__Output | null = null;
  for await (const event of client.Stream(request, callOptions())) {
    kinds.push(event.event ?? "");
    if (event.step) {
      steps.push(event.step.step);
      totalSteps.add(event.step.total_steps);
    } else if (event.completed) {
      completed = event.completed;
    }
  }
  const count = (kind: string) => kinds.filter((k) => k === kind).length;
  return {
    events: kinds.length,
    step_events: count("step"),
    completed_events: count("completed"),
    last_event: kinds[kinds.length - 1] ?? null,
    steps,
    total_steps: [...totalSteps],
    outputs: completed ? completed.outputs.map(describeOutput) : [],
    computed_steps: completed?.cache_stats?.computed_steps ?? null,
  };
}

async function stats(client: EngineClient) {
  const response = await unary<StatsResponse__Output>((cb) => client.Stats({}, callOptions(), cb));
  return {
    device: response.device,
    queue_depth: response.queue_depth,
    models: response.models.map((m) => ({
      model: m.model,
      success: Number(m.success?.count ?? 0),
      steps: Number(m.steps),
      denoise_ms: m.denoise?.total_ms ?? 0,
    })),
  };
}

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      prompt: { type: "string", default: "a lighthouse at dusk" },
      size: { type: "string", default: "64" },
      steps: { type: "string", default: "4" },
      seed: { type: "string", default: "7" },
    },
  });
  if (positionals.length !== 1) {
    throw new Error("usage: client.js HOST:PORT [--prompt P] [--size PX] [--steps N] [--seed S]");
  }
  const size = Number(values.size);
  const request: GenerateRequest = {
    prompt: values.prompt,
    width: size,
    height: size,
    num_inference_steps: Number(values.steps),
    seed: values.seed, // int64: a decimal string keeps every bit
  };
  const client = connect(positionals[0]);
  try {
    const summary = {
      generate: await generate(client, request),
      stream: await stream(client, request),
      stats: await stats(client),
    };
    process.stdout.write(JSON.stringify(summary, null, 2) + "\n");
  } finally {
    client.close();
  }
}

main().catch((error: unknown) => {
  const status = error as Partial<grpc.ServiceError>;
  const code = status.code !== undefined ? `${grpc.status[status.code]}: ` : "";
  process.stderr.write(`ditserve node client: ${code}${status.details ?? String(error)}\n`);
  process.exit(1);
});
