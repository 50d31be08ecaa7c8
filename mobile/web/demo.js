// The page of `python -m mobile.web_demo`: sliders -> loss_weights -> the .tflite's signature,
// run in this browser by LiteRT.js (WebAssembly). The steps mirror mobile/example_app.py:
// the sidecar gives the sliders (mobile/metadata.py: slider position in [0, 1] -> raw value,
// log scale for log-uniform coefficients), raw values are fed as `loss_weights` by input name.
// The strength knob is yoto_tf.style_transfer.loss_space.with_strength: it multiplies every
// style weight, within the range that keeps each one inside its coefficient's range.

import {loadAndCompile, loadLiteRt, Tensor} from "./litert/core/index.js";

const WASM_DIR = "./litert/wasm/";
const CONFIG_FILE = "demo.json";
const STEPS = 1000; // slider resolution: position = value / STEPS
const IMAGE = "image", LOSS_WEIGHTS = "loss_weights", STYLE_INDEX = "style_index";

const $ = (id) => document.getElementById(id);
const state = {
  config: null, sidecar: null, model: null, outputName: null,
  positions: {}, // coefficient name -> slider position in [0, 1]
  strength: 1, styleIndex: 0, lastRun: null,
};
window.yotoDemo = state; // read by tests/test_web_demo.py

// ----- Loss weights from the sliders (mobile/metadata.py, loss_space.with_strength) -----

function sliderToValue(c, position) {
  if (c.distribution === "log_uniform") return c.low * (c.high / c.low) ** position;
  if (c.distribution === "uniform") return c.low + (c.high - c.low) * position;
  return c.default;
}

function baseWeights() {
  return state.sidecar.coefficients.map((c) =>
    c.name in state.positions ? sliderToValue(c, state.positions[c.name]) : c.default);
}

function strengthCoefficients() {
  const names = new Set(state.config.strength_coefficients);
  return state.sidecar.coefficients.filter((c) => names.has(c.name));
}

/** [low, high] of the strength factor around `base` (loss_space.strength_range). */
function strengthRange(base) {
  let low = 0, high = Infinity;
  for (const c of strengthCoefficients()) {
    low = Math.max(low, c.low / base[c.index]);
    high = Math.min(high, c.high / base[c.index]);
  }
  return [low, high];
}

/** The raw coefficient vector the model gets: sliders, then strength, clipped to range. */
function lossWeights() {
  const base = baseWeights();
  const [low, high] = strengthRange(base);
  state.strength = Math.min(high, Math.max(low, state.strength));
  for (const c of strengthCoefficients()) base[c.index] *= state.strength;
  const values = new Float32Array(base.length);
  for (const c of state.sidecar.coefficients) {
    values[c.index] = Math.min(c.high, Math.max(c.low, base[c.index]));
  }
  return values;
}

// ----- Controls -----

function addSlider(name, label, position, onInput) {
  const row = document.createElement("label");
  row.className = "slider";
  const text = document.createElement("span");
  text.id = `label-${name}`;
  text.textContent = label;
  const input = document.createElement("input");
  Object.assign(input, {type: "range", min: 0, max: STEPS, step: 1, id: `slider-${name}`});
  input.value = Math.round(position * STEPS);
  const value = document.createElement("output");
  value.id = `value-${name}`;
  input.addEventListener("input", () => onInput(input.value / STEPS));
  row.append(text, input, value);
  $("sliders").append(row);
  return input;
}

function buildControls() {
  const {sidecar, config} = state;
  if (strengthCoefficients().length) {
    const slider = addSlider("strength", "strength", 0, (p) => {
      const [low, high] = strengthRange(baseWeights());
      state.strength = low * (high / low) ** p;
      refresh();
    });
    slider.parentElement.title = "Multiplies every style weight (how much painting).";
  }
  for (const c of sidecar.coefficients) {
    if (c.slider.scale === "none") continue;
    state.positions[c.name] = c.slider.default_position;
    const scale = c.slider.scale === "log" ? "log" : "linear";
    addSlider(c.name, `${c.name} (${scale}, ${c.low}..${c.high})`, c.slider.default_position,
              (p) => { state.positions[c.name] = p; refresh(); });
  }
  if (sidecar.num_styles) {
    for (let i = 0; i < sidecar.num_styles; i++) {
      $("style").append(new Option(config.style_names[i] ?? `style ${i}`, i));
    }
    $("style").addEventListener("change", () => {
      state.styleIndex = Number($("style").value);
      refresh();
    });
    $("style-row").hidden = false;
  }
  $("reset").addEventListener("click", () => {
    for (const c of sidecar.coefficients) {
      if (c.name in state.positions) {
        state.positions[c.name] = c.slider.default_position;
        $(`slider-${c.name}`).value = Math.round(c.slider.default_position * STEPS);
      }
    }
    state.strength = 1;
    refresh();
  });
  $("use-sample").addEventListener("click", () => guarded(async () => {
    await loadSample();
    schedule();
  }));
  $("upload").addEventListener("change", () => {
    const file = $("upload").files[0];
    if (file) guarded(() => loadUpload(file));
  });
}

/** Shows the slider values (the strength slider follows its range, which depends on the
 * style sliders) and re-runs the model; the values fed are shown after the run. */
function refresh() {
  lossWeights(); // clamps the strength into its current range
  for (const c of state.sidecar.coefficients) {
    if (c.name in state.positions) {
      $(`value-${c.name}`).value = sliderToValue(c, state.positions[c.name]).toPrecision(3);
    }
  }
  const strengthSlider = $("slider-strength");
  if (strengthSlider) {
    const [low, high] = strengthRange(baseWeights());
    const position = high > low ? Math.log(state.strength / low) / Math.log(high / low) : 0;
    strengthSlider.value = Math.round(position * STEPS);
    $("value-strength").value = `\u00d7${state.strength.toPrecision(3)}`;
    $("label-strength").textContent =
      `strength (log, ${low.toPrecision(3)}..${high.toPrecision(3)})`;
  }
  schedule();
}

// ----- Pictures -----

function imageSize() {
  const [height, width] = state.config.image_size;
  return {height, width};
}

function inputContext() {
  return $("input").getContext("2d", {willReadFrequently: true});
}

/** The sample, written by mobile.web_demo at the model's size: drawn 1:1 (exact pixels). */
async function loadSample() {
  const image = new Image();
  image.src = state.config.sample;
  try {
    await image.decode();
  } catch {
    throw new Error(`Cannot load the sample photo ${state.config.sample}.`);
  }
  inputContext().drawImage(image, 0, 0);
}

/** An uploaded photo, centre-cropped to the model's aspect ratio and resized to its size. */
async function loadUpload(file) {
  let bitmap;
  try {
    bitmap = await createImageBitmap(file);
  } catch {
    throw new Error(`Cannot read ${file.name} as a picture.`);
  }
  const {height, width} = imageSize();
  const scale = Math.min(bitmap.width / width, bitmap.height / height);
  const sw = width * scale, sh = height * scale;
  const ctx = inputContext();
  ctx.imageSmoothingQuality = "high";
  ctx.drawImage(bitmap, (bitmap.width - sw) / 2, (bitmap.height - sh) / 2, sw, sh,
                0, 0, width, height);
  bitmap.close();
  schedule();
}

function inputTensor() {
  const {height, width} = imageSize();
  const rgba = inputContext().getImageData(0, 0, width, height).data;
  const rgb = new Float32Array(height * width * 3);
  for (let i = 0, j = 0; i < rgba.length; i += 4, j += 3) {
    rgb[j] = rgba[i] / 255;
    rgb[j + 1] = rgba[i + 1] / 255;
    rgb[j + 2] = rgba[i + 2] / 255;
  }
  return new Tensor(rgb, [1, height, width, 3]);
}

function drawOutput(rgb) {
  const {height, width} = imageSize();
  const picture = new ImageData(width, height);
  // Uint8ClampedArray rounds half to even and clips, like np.clip(np.round(x * 255), 0, 255).
  for (let i = 0, j = 0; j < rgb.length; i += 4, j += 3) {
    picture.data[i] = rgb[j] * 255;
    picture.data[i + 1] = rgb[j + 1] * 255;
    picture.data[i + 2] = rgb[j + 2] * 255;
    picture.data[i + 3] = 255;
  }
  $("output").getContext("2d").putImageData(picture, 0, 0);
}

// ----- Running the model -----

async function stylizeOnce() {
  const weights = lossWeights();
  const feeds = {
    [IMAGE]: inputTensor(),
    [LOSS_WEIGHTS]: new Tensor(weights, [1, weights.length]),
  };
  if (state.sidecar.num_styles) {
    feeds[STYLE_INDEX] = new Tensor(new Int32Array([state.styleIndex]), [1]);
  }
  const start = performance.now();
  let outputs;
  try {
    outputs = await state.model.run(state.sidecar.signature_key, feeds);
  } finally {
    for (const tensor of Object.values(feeds)) tensor.delete();
  }
  try {
    drawOutput(await outputs[state.outputName].data());
  } finally {
    for (const tensor of Object.values(outputs)) tensor.delete();
  }
  const ms = performance.now() - start;
  state.lastRun = {lossWeights: Array.from(weights), styleIndex: state.styleIndex, ms};
  document.body.dataset.runs = Number(document.body.dataset.runs) + 1;
  $("status").textContent = `Stylized in ${ms.toFixed(0)} ms (LiteRT.js, WebAssembly CPU).`;
  $("lambda").textContent = "loss_weights = [" + state.sidecar.coefficients
    .map((c) => `${c.name} ${weights[c.index].toPrecision(3)}`).join(", ") + "]" +
    (state.sidecar.num_styles ? `, style_index = ${state.styleIndex}` : "");
}

let pending = false, running = false;

/** Runs the model after a change; changes made while it runs coalesce into one more run. */
function schedule() {
  pending = true;
  if (!running && state.model) guarded(runPending);
}

async function runPending() {
  running = true;
  document.body.dataset.busy = "true";
  $("status").textContent = "Stylizing\u2026";
  try {
    while (pending) {
      pending = false;
      await stylizeOnce();
    }
  } finally {
    running = false;
    document.body.dataset.busy = "false";
  }
}

async function guarded(step) {
  try {
    await step();
  } catch (error) {
    showFatal(error.message || String(error));
  }
}

// ----- Start-up, with a clear message for each way it can fail -----

async function fetchOk(url, what) {
  let response;
  try {
    response = await fetch(url);
  } catch (error) {
    throw new Error(`Cannot fetch ${what} ${url}: ${error.message}.`);
  }
  if (!response.ok) {
    throw new Error(`${what[0].toUpperCase() + what.slice(1)} ${url} not found ` +
                    `(HTTP ${response.status}). Re-run python -m mobile.web_demo to write it.`);
  }
  return response;
}

async function checkSha256(bytes, expected, url) {
  if (!crypto.subtle) return; // only in secure contexts (localhost or https)
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  const actual = Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
  if (actual !== expected) {
    throw new Error(`Model file ${url} does not match its sidecar (SHA-256); ` +
                    "re-run python -m mobile.web_demo.");
  }
}

async function start() {
  state.config = await (await fetchOk(CONFIG_FILE, "page settings")).json();
  state.sidecar = await (await fetchOk(state.config.sidecar_file, "model sidecar")).json();
  $("title").textContent = `(${state.config.title})`;
  const {height, width} = imageSize();
  for (const canvas of [$("input"), $("output")]) Object.assign(canvas, {height, width});
  buildControls();
  const modelBytes = new Uint8Array(
    await (await fetchOk(state.config.model_file, "model file")).arrayBuffer());
  await checkSha256(modelBytes, state.sidecar.sha256, state.config.model_file);
  if (typeof WebAssembly !== "object") {
    throw new Error("This browser has no WebAssembly, which LiteRT.js needs to run the model.");
  }
  try {
    await loadLiteRt(WASM_DIR);
  } catch (error) {
    throw new Error(`The LiteRT.js WebAssembly runtime failed to load from ${WASM_DIR} ` +
                    `(${error.message || error}). Re-run python -m mobile.web_demo, which ` +
                    "copies it from mobile/web/node_modules.");
  }
  try {
    state.model = await loadAndCompile(modelBytes, {accelerator: "wasm"});
  } catch (error) {
    throw new Error(`LiteRT.js cannot load ${state.config.model_file}: ${error.message || error}`);
  }
  state.outputName = state.sidecar.outputs[0].name;
  await loadSample();
  refresh();
}

if (location.protocol !== "file:") guarded(start);
