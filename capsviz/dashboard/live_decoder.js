// The live decoder: 16 capsule-dimension sliders and the reconstruction, decoded in the browser on
// every input event (no server round trip). Streamlit components v2: this module's default export
// is called on mount and again whenever the Python side sends new data; what the user has dragged
// is kept across those calls unless Python sends new values (a new `token`).
//
// data: {digest, weights|null, capsule: [16], digit_class, labels: [16], limit, step, values: [16], token,
//        size, title}
// weights: {layers: [{rows, cols, weight: base64 float16, bias: base64 float16}] x 3}, sent once per
//          run and session and cached here by digest; when missing, the component asks for them
//          (trigger `need_weights`).
// state sent back: offsets ([16]), on release of a slider and on reset.

const DECODERS = (globalThis.__capsvizDecoders ??= new Map()); // digest -> decoded float32 layers
const MAX_DECODERS = 4;

function halfTable() {
  // float16 bits -> float32, all 65536 of them (256 KB), built once
  if (globalThis.__capsvizHalfTable) return globalThis.__capsvizHalfTable;
  const table = new Float32Array(65536);
  for (let bits = 0; bits < 65536; bits++) {
    const sign = bits & 0x8000 ? -1 : 1;
    const exponent = (bits >> 10) & 0x1f;
    const fraction = bits & 0x3ff;
    if (exponent === 0) table[bits] = sign * Math.pow(2, -14) * (fraction / 1024);
    else if (exponent === 31) table[bits] = fraction ? NaN : sign * Infinity;
    else table[bits] = sign * Math.pow(2, exponent - 15) * (1 + fraction / 1024);
  }
  return (globalThis.__capsvizHalfTable = table);
}

function halves(base64) {
  const binary = atob(base64);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  const bits = new Uint16Array(bytes.buffer); // little-endian, as numpy wrote them
  const table = halfTable();
  const out = new Float32Array(bits.length);
  for (let i = 0; i < bits.length; i++) out[i] = table[bits[i]];
  return out;
}

function loadDecoder(digest, weights) {
  if (DECODERS.has(digest)) return DECODERS.get(digest);
  if (!weights) return null;
  const layers = weights.layers.map((layer) => ({
    rows: layer.rows, cols: layer.cols, weight: halves(layer.weight), bias: halves(layer.bias),
  }));
  const decoder = {layers, h1: new Float32Array(layers[0].rows), h2: new Float32Array(layers[1].rows),
                   out: new Float32Array(layers[2].rows)};
  DECODERS.set(digest, decoder);
  while (DECODERS.size > MAX_DECODERS) DECODERS.delete(DECODERS.keys().next().value);
  return decoder;
}

// The decoder of capsnet.py: the other capsules are masked to zero, so of the first layer's 160
// inputs only this class's 16 count. ReLU, ReLU, sigmoid.
function decode(decoder, vector, digitClass) {
  const [first, second, third] = decoder.layers;
  const {h1, h2, out} = decoder;
  const dims = vector.length;
  const offset = digitClass * dims;
  for (let j = 0; j < first.rows; j++) {
    let sum = first.bias[j];
    const row = j * first.cols + offset;
    for (let k = 0; k < dims; k++) sum += first.weight[row + k] * vector[k];
    h1[j] = sum > 0 ? sum : 0;
  }
  for (let j = 0; j < second.rows; j++) {
    let sum = second.bias[j];
    const row = j * second.cols;
    for (let k = 0; k < second.cols; k++) sum += second.weight[row + k] * h1[k];
    h2[j] = sum > 0 ? sum : 0;
  }
  for (let j = 0; j < third.rows; j++) {
    let sum = third.bias[j];
    const row = j * third.cols;
    for (let k = 0; k < third.cols; k++) sum += third.weight[row + k] * h2[k];
    out[j] = 1 / (1 + Math.exp(-sum));
  }
  return out;
}

function format(value) {
  return (value >= 0 ? "+" : "−") + Math.abs(value).toFixed(2);
}

function build(parentElement) {
  const root = document.createElement("div");
  root.className = "cv-root";
  root.innerHTML = `
    <div class="cv-picture">
      <div class="cv-title">Edited reconstruction</div>
      <canvas class="cv-canvas" width="28" height="28"></canvas>
      <div class="cv-caption"></div>
      <button type="button" class="cv-reset">Reset all to 0</button>
    </div>
    <div class="cv-sliders"></div>`;
  parentElement.appendChild(root);
  return root;
}

export default function (component) {
  const {data, parentElement, setStateValue, setTriggerValue} = component;
  const root = parentElement.querySelector(".cv-root") || build(parentElement);
  const canvas = root.querySelector(".cv-canvas");
  const caption = root.querySelector(".cv-caption");
  const sliders = root.querySelector(".cv-sliders");
  const dims = data.capsule.length;
  const size = data.size;
  if (canvas.width !== size) canvas.width = canvas.height = size;
  const context = canvas.getContext("2d", {willReadFrequently: true});
  const image = context.createImageData(size, size);

  // One slider per dimension (rebuilt when the count changes), labelled by what it was measured to do.
  if (sliders.children.length !== dims) {
    sliders.innerHTML = "";
    for (let d = 0; d < dims; d++) {
      const row = document.createElement("label");
      row.className = `cv-slider cv-dim-${d}`;
      row.innerHTML = `<span class="cv-label"></span><span class="cv-value"></span>
                       <input type="range" data-dim="${d}">`;
      sliders.appendChild(row);
    }
  }
  const inputs = [...sliders.querySelectorAll("input")];
  const values = (root.cvValues && root.cvValues.length === dims) ? root.cvValues : new Float32Array(dims);
  if (root.cvToken !== data.token) { // Python set the values (a new digit, capsule, run or range)
    data.values.forEach((value, d) => (values[d] = value));
    root.cvToken = data.token;
  }
  root.cvValues = values;
  inputs.forEach((input, d) => {
    input.min = -data.limit;
    input.max = data.limit;
    input.step = data.step;
    input.value = values[d];
    const row = input.parentElement;
    row.querySelector(".cv-label").textContent = data.labels[d];
    row.querySelector(".cv-value").textContent = format(values[d]);
    row.title = data.hints ? data.hints[d] : "";
  });
  root.querySelector(".cv-title").textContent = data.title;

  const decoder = loadDecoder(data.digest, data.weights);
  const capsule = Float32Array.from(data.capsule);
  const vector = new Float32Array(dims);
  root.dataset.draws = root.dataset.draws || "0";

  function draw() {
    if (!decoder) return;
    for (let d = 0; d < dims; d++) vector[d] = capsule[d] + values[d];
    const pixels = decode(decoder, vector, data.digit_class);
    for (let i = 0; i < pixels.length; i++) {
      const grey = Math.round(255 * pixels[i]);
      image.data[4 * i] = image.data[4 * i + 1] = image.data[4 * i + 2] = grey;
      image.data[4 * i + 3] = 255;
    }
    context.putImageData(image, 0, 0);
    const changed = [...values].map((v, d) => (v ? `d${d + 1} ${format(v)}` : "")).filter(Boolean);
    caption.textContent = `offsets: ${changed.join(", ") || "none"}`;
    root.dataset.draws = String(Number(root.dataset.draws) + 1);
  }

  function onInput(event) {
    const d = Number(event.target.dataset.dim);
    values[d] = Number(event.target.value);
    event.target.parentElement.querySelector(".cv-value").textContent = format(values[d]);
    draw();
    const drawn = performance.now();
    requestAnimationFrame(() => setTimeout(() => { // input event -> drawn, -> next frame painted (ms)
      const latency = (globalThis.__capsvizLatency ??= []);
      latency.push({drawn: drawn - event.timeStamp, painted: performance.now() - event.timeStamp});
      if (latency.length > 1000) latency.splice(0, latency.length - 1000);
    }, 0));
  }
  function send() {
    setStateValue("offsets", [...values]);
  }
  function reset() {
    values.fill(0);
    inputs.forEach((input, d) => {
      input.value = 0;
      input.parentElement.querySelector(".cv-value").textContent = format(0);
    });
    draw();
    send();
  }
  const button = root.querySelector(".cv-reset");
  inputs.forEach((input) => {
    input.addEventListener("input", onInput);
    input.addEventListener("change", send);
  });
  button.addEventListener("click", reset);

  if (decoder) {
    root.dataset.ready = "true";
    draw();
  } else {
    root.dataset.ready = "false";
    caption.textContent = "Loading the decoder…";
    setTriggerValue("need_weights", data.digest);
  }

  return () => {
    inputs.forEach((input) => {
      input.removeEventListener("input", onInput);
      input.removeEventListener("change", send);
    });
    button.removeEventListener("click", reset);
  };
}
