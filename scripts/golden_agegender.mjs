// face-api.js's own AgeGenderNet on tfjs's CPU backend: the reference the derived ONNX model is
// checked against (scripts/golden_agegender.py runs this; it is not part of regard).
//
// Usage: node golden_agegender.mjs NODE_DIR MODEL_DIR CROPS.rgb COUNT
//   NODE_DIR   folder whose node_modules has @vladmandic/face-api, @tensorflow/tfjs and
//              @tensorflow/tfjs-backend-wasm (face-api's Node build without tfjs-node needs both)
//   MODEL_DIR  folder with age_gender_model-weights_manifest.json and age_gender_model.bin
//   CROPS.rgb  COUNT crops of 112x112 RGB uint8, row-major, back to back
// Prints JSON: backend, versions and, per crop, age (years) and the softmax probabilities by name.
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

const [nodeDir, modelDir, cropsPath, countText] = process.argv.slice(2);
if (!countText) {
  console.error('usage: node golden_agegender.mjs NODE_DIR MODEL_DIR CROPS.rgb COUNT');
  process.exit(2);
}
const require = createRequire(join(nodeDir, 'package.json'));
const faceapi = require('@vladmandic/face-api/dist/face-api.node-wasm.js');
const tf = faceapi.tf;

await tf.setBackend('cpu');
await tf.ready();
if (tf.getBackend() !== 'cpu') throw new Error(`backend is ${tf.getBackend()}, wanted cpu`);
await faceapi.nets.ageGenderNet.loadFromDisk(modelDir);

const side = 112;
const count = Number(countText);
const bytes = readFileSync(cropsPath);
if (bytes.length !== count * side * side * 3) throw new Error(`${cropsPath}: ${bytes.length} bytes for ${count} crops`);

const results = [];
for (let i = 0; i < count; i += 1) {
  const pixels = new Uint8Array(bytes.buffer, bytes.byteOffset + i * side * side * 3, side * side * 3);
  const image = tf.tensor3d(Float32Array.from(pixels), [side, side, 3], 'float32');
  const input = await faceapi.toNetInput(image);
  // forwardInput = runNet + softmax: the same tensors predictAgeAndGender reads, both classes kept.
  const out = faceapi.nets.ageGenderNet.forwardInput(input);
  const age = out.age.dataSync()[0];
  const gender = out.gender.dataSync();
  // face-api's gender head is [male, female].
  results.push({ age, p_male: gender[0], p_female: gender[1] });
  tf.dispose([image, out.age, out.gender]);
}
console.log(JSON.stringify({
  backend: tf.getBackend(),
  tfjs: tf.version_core,
  face_api: faceapi.version,
  results,
}));
