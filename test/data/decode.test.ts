import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import sharp from 'sharp';
import { decodeImage, DecodeError, type DecodedImage } from '../../src-main/engine/data/decode.js';
import { sniffImageFormat } from '../../src-main/engine/data/image-format.js';
import { gradientRgb, solidJpeg } from '../helpers/images.js';

const px = (img: DecodedImage, x: number, y: number) => Array.from(img.data.subarray((y * img.width + x) * 3, (y * img.width + x) * 3 + 3));
const near = (a: number[], b: number[], tol: number) => a.every((v, i) => Math.abs(v - b[i]) <= tol);

function rawPng(raw: Buffer, width: number, height: number, channels: 3 | 4 = 3) {
  return sharp(raw, { raw: { width, height, channels } });
}

describe('decoding: geometry', () => {
  test('validation: the centred largest square, exactly the right pixels', async () => {
    // 300x200 gradient; centre square is x in [50, 250): at size 200 no resampling happens.
    const png = await rawPng(gradientRgb(300, 200), 300, 200).png().toBuffer();
    const img = await decodeImage(png, { size: 200, mode: 'valid' });
    assert.equal(img.width, 200);
    assert.equal(img.height, 200);
    assert.deepEqual(px(img, 0, 0), [50, 0, 50]);
    assert.deepEqual(px(img, 199, 199), [249, 199, (249 + 199) % 256]);
    assert.deepEqual([img.sourceWidth, img.sourceHeight, img.format], [300, 200, 'png']);
  });

  test('validation: downscaled crop keeps the gradient (bilinear, within 2 levels)', async () => {
    const png = await rawPng(gradientRgb(240, 160), 240, 160).png().toBuffer();
    const img = await decodeImage(png, { size: 80, mode: 'valid' });
    // Output pixel (x, y) covers source pixels 40+2x .. 41+2x, so red is about 40.5 + 2x.
    for (const x of [0, 20, 40, 79]) assert.ok(Math.abs(px(img, x, 10)[0] - (40.5 + 2 * x)) <= 2, `x=${x}: ${px(img, x, 10)}`);
  });

  test('training: the whole image with its short side at size', async () => {
    const img = await decodeImage(await solidJpeg(500, 375), { size: 224, mode: 'train' });
    assert.deepEqual([img.width, img.height, img.data.length], [299, 224, 299 * 224 * 3]);
  });
});

describe('decoding: colour and orientation', () => {
  test('EXIF orientation is applied before cropping (orientation 6 = rotate 90° clockwise)', async () => {
    // Stored 40x20: left half red, right half blue. Shown upright it is 20x40: red on top.
    const raw = Buffer.alloc(40 * 20 * 3);
    for (let y = 0; y < 20; y++) for (let x = 0; x < 40; x++) raw.set(x < 20 ? [255, 0, 0] : [0, 0, 255], (y * 40 + x) * 3);
    const jpeg = await rawPng(raw, 40, 20).jpeg({ quality: 100 }).withMetadata({ orientation: 6 }).toBuffer();
    const img = await decodeImage(jpeg, { size: 20, mode: 'train' });
    assert.deepEqual([img.width, img.height], [20, 40]);
    assert.ok(near(px(img, 10, 5), [255, 0, 0], 40), `top ${px(img, 10, 5)}`);
    assert.ok(near(px(img, 10, 35), [0, 0, 255], 40), `bottom ${px(img, 10, 35)}`);
  });

  test('alpha is flattened onto white; opaque pixels keep their colour', async () => {
    const raw = Buffer.alloc(8 * 8 * 4);
    for (let i = 0; i < 64; i++) raw.set(i < 32 ? [0, 0, 0, 0] : [10, 200, 30, 255], i * 4);
    const img = await decodeImage(await rawPng(raw, 8, 8, 4).png().toBuffer(), { size: 8, mode: 'valid' });
    assert.deepEqual(px(img, 3, 1), [255, 255, 255]);
    assert.deepEqual(px(img, 3, 6), [10, 200, 30]);
  });

  test('greyscale, CMYK, 16-bit and GIF inputs all come out as 8-bit RGB', async () => {
    const base = () => sharp({ create: { width: 16, height: 16, channels: 3, background: { r: 180, g: 90, b: 40 } } });
    const inputs = {
      grey: await base().greyscale().png().toBuffer(),
      cmyk: await base().toColourspace('cmyk').jpeg({ quality: 100 }).toBuffer(),
      rgb16: await base().toColourspace('rgb16').png().toBuffer(),
      gif: await base().gif().toBuffer(),
    };
    const grey = await decodeImage(inputs.grey, { size: 16, mode: 'valid' });
    const [r, g, b] = px(grey, 5, 5);
    assert.ok(r === g && g === b && r > 80 && r < 140, `grey ${[r, g, b]}`);
    for (const name of ['cmyk', 'rgb16', 'gif'] as const) {
      const img = await decodeImage(inputs[name], { size: 16, mode: 'valid' });
      assert.equal(img.data.length, 16 * 16 * 3, name);
      assert.ok(near(px(img, 8, 8), [180, 90, 40], name === 'cmyk' ? 35 : 12), `${name}: ${px(img, 8, 8)}`);
    }
  });

  test('the real format comes from the bytes, whatever the name says', async () => {
    assert.equal(sniffImageFormat(await sharp({ create: { width: 2, height: 2, channels: 3, background: 'red' } }).gif().toBuffer()), 'gif');
    assert.equal(sniffImageFormat(await sharp({ create: { width: 2, height: 2, channels: 4, background: 'red' } }).webp().toBuffer()), 'webp');
    assert.equal(sniffImageFormat(await solidJpeg(2, 2)), 'jpeg');
    assert.equal(sniffImageFormat(Buffer.from('BM\x36\0\0\0')), 'bmp');
    assert.equal(sniffImageFormat(Buffer.from('hello')), undefined);
  });
});

describe('decoding: bad input gives a DecodeError that says what to do', () => {
  const decode = (buf: Buffer, maxPixels?: number) => decodeImage(buf, { size: 32, mode: 'valid', maxPixels });
  const rejectsWith = (p: Promise<unknown>, re: RegExp) => assert.rejects(p, (err: Error) => err instanceof DecodeError && re.test(err.message));

  test('zero-byte file', () => rejectsWith(decode(Buffer.alloc(0)), /empty \(0 bytes\)/));
  test('text file named .jpg', () => rejectsWith(decode(Buffer.from('<html>not a photo</html>')), /contains text/));
  test('zip file named .jpg', () => rejectsWith(decode(Buffer.from('PK\x03\x04rest')), /zip archive/));
  test('truncated JPEG', async () => {
    const jpeg = await sharp({ create: { width: 256, height: 256, channels: 3, noise: { type: 'gaussian', mean: 128, sigma: 50 }, background: 'black' } }).jpeg().toBuffer();
    await rejectsWith(decode(jpeg.subarray(0, Math.floor(jpeg.length / 2))), /truncated or damaged/);
  });
  test('JPEG header followed by garbage', async () => {
    const garbage = Buffer.concat([Buffer.from([0xff, 0xd8, 0xff, 0xe0]), Buffer.alloc(500, 0x5a)]);
    await rejectsWith(decode(garbage), /could not be decoded|truncated or damaged/);
  });
  test('BMP is recognised but refused with a conversion hint', () =>
    rejectsWith(decode(Buffer.concat([Buffer.from('BM'), Buffer.alloc(60)])), /BMP images are not supported; convert the file to JPEG or PNG/));
  test('an image above the pixel limit is refused before decoding', async () => {
    const big = await solidJpeg(400, 300);
    await rejectsWith(decode(big, 100_000), /400x300 \(0\.12 megapixels\), above the 0\.1 megapixels safety limit.*--max-pixels/);
  });
});
